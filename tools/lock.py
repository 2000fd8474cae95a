"""The install lock: every package `make install` and its extras install, at one version each.

    python tools/lock.py write VENV [LOCK]   # pin what VENV has installed (run by `make lock`)
    python tools/lock.py check [LOCK]        # exit 1 when pyproject.toml and the lock disagree

The Makefile installs with the lock as pip constraints (`pip install -c requirements.lock`): each
package has exactly one allowed version, so pip's resolver has nothing to backtrack over and an
install is the same on every day. The lock's header records a hash of the dependency lists it was
made from, so a changed `pyproject.toml` is caught even when the old pins still satisfy it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
EXTRAS = ("test", "lint", "bench")  # what the lock covers besides the default dependencies
SELF = "w2s"
HEADER = "# pyproject-sha256: "


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The default dependencies and those of the locked extras (the project's own extras expanded)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    reqs, seen, todo = [], set(), list(EXTRAS)
    specs = list(project["dependencies"])
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for spec in optional.get(extra, []):
            req = Requirement(spec)
            if canonicalize_name(req.name) == SELF:
                todo.extend(req.extras)
            else:
                specs.append(spec)
    for spec in specs:
        reqs.append(Requirement(spec))
    return reqs


def fingerprint(reqs: list[Requirement]) -> str:
    """A hash of the dependency specifications, independent of their order and formatting."""
    return hashlib.sha256(json.dumps(sorted(str(r) for r in reqs)).encode()).hexdigest()


def read_lock(lock: Path = LOCK) -> tuple[str | None, dict[str, Version]]:
    """The lock's recorded fingerprint and its pins, by canonical name."""
    recorded: str | None = None
    pins: dict[str, Version] = {}
    for line in lock.read_text().splitlines():
        if line.startswith(HEADER):
            recorded = line[len(HEADER) :].strip()
        elif line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version.strip())
    return recorded, pins


def disagreements(reqs: list[Requirement], lock: Path = LOCK) -> list[str]:
    """Every way pyproject.toml and the lock disagree, as readable lines (empty: they agree)."""
    if not lock.is_file():
        return [f"{lock.name} is missing: run `make lock`"]
    recorded, pins = read_lock(lock)
    problems = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"pyproject.toml requires {req} but {lock.name} does not pin {req.name}")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"pyproject.toml requires {req} but {lock.name} pins {req.name}=={pinned}")
    if recorded != fingerprint(reqs):
        problems.append(f"the dependency lists in pyproject.toml changed since {lock.name} was made")
    return problems


def installed_mismatches(root: str = f"{SELF}[test]", lock: Path = LOCK) -> list[str]:
    """Every distribution this interpreter has installed for `root` (the project with its test extra)
    and everything that needs, transitively, at a version the lock does not pin: what an install
    from the lock would not have reproduced."""
    from importlib.metadata import PackageNotFoundError, distribution

    _, pins = read_lock(lock)
    problems, seen, todo = [], set(), [Requirement(root)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = (name, tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            problems.append(f"{req.name} is required but not installed")
            continue
        version = Version(Version(dist.version).public)  # the build (+cpu, +cu128) is TORCH_INDEX's choice
        if name != SELF and pins.get(name) != version:
            problems.append(f"{name}=={version} is installed but {lock.name} pins {pins.get(name, 'nothing')}")
        for spec in dist.requires or []:
            dep = Requirement(spec)
            extras = [{"extra": e} for e in (req.extras or {""})]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in extras):
                todo.append(dep)
    return sorted(set(problems))


# Dependencies that only some Python 3.11 releases install, so a lock frozen on a newer one lacks
# them: redis and aiohttp need async-timeout below Python 3.11.3 (Debian 12's python3 is 3.11.2).
OTHER_PYTHONS = {"async-timeout": "5.0.1"}


def write(venv: Path, lock: Path = LOCK) -> int:
    """Pin everything `venv` has installed (pip and setuptools included, the project excluded)."""
    out = subprocess.run(
        [str(venv / "bin" / "pip"), "freeze", "--all", "--exclude-editable"], check=True, capture_output=True, text=True
    ).stdout
    # A local version label (torch's `+cpu`) is dropped: `torch==2.13.0` admits the CPU and the
    # CUDA builds of that release alike, so TORCH_INDEX chooses the build and the lock the release.
    frozen = [line.split("+")[0] for line in out.splitlines() if re.match(r"^[A-Za-z0-9_.\-]+==", line)]
    have = {canonicalize_name(line.split("==")[0]) for line in frozen}
    pins = sorted(
        frozen + [f"{name}=={version}" for name, version in OTHER_PYTHONS.items() if name not in have],
        key=lambda line: canonicalize_name(line.split("==")[0]),
    )
    lock.write_text(
        "# The install lock: made by `make lock` (see README, 'Updating the lock'); do not edit by hand.\n"
        f"{HEADER}{fingerprint(requirements())}\n" + "\n".join(pins) + "\n"
    )
    print(f"{lock.name}: {len(pins)} packages pinned")
    return 0


def check(lock: Path = LOCK) -> int:
    problems = disagreements(requirements(), lock)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if problems:
        print("update the lock with `make lock`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["write"] and len(args) in (2, 3):
        raise SystemExit(write(Path(args[1]), Path(args[2]) if len(args) == 3 else LOCK))
    if args[:1] == ["check"] and len(args) in (1, 2):
        raise SystemExit(check(Path(args[1]) if len(args) == 2 else LOCK))
    raise SystemExit(__doc__)

"""The seed ledger: which seeds every sweep used on which testbed, kept in the repository
(`results/seed-ledger.json`, committed like code), so that a confirmatory sweep can show that
the seeds (and so the splits and test rows) it confirms on chose nothing.

Every sweep, exploratory or confirmatory, is declared before any point runs: its name, its
config file with the git commit it ran from, the seeds of each testbed, and whether it is
confirmatory. A sweep config marked `confirmatory: true` is refused, with nothing run and nothing
written, when

- any of its seeds was used by an earlier sweep in the ledger on the same testbed, or
- its config file or the base config it builds on is not as committed (modified, or not tracked
  by git): the declared protocol is the committed one.

One reuse is allowed: a confirmatory sweep stopped before it finished (a crash, a lost machine, a
scheduler's kill) is resumed by running it again under the same protocol. Its entry `resumes`
the earlier confirmatory entries of the same config file with the same seeds on the same
testbeds whose commit's tree equals the working tree outside what sweeps write and document
(`OUTPUTS`): the same config, base config and code, so the rerun can choose nothing the first
start did not (its finished points come back from the cache). Once one of them has `finished`
(stamped by `finish` when the sweep's report is written), its seeds are used like any others, as
they are when anything else differs, a commit of code or config included.

A testbed is the data a seed draws its splits from: the data section (its non-default settings,
so that a setting added to the schema later does not rename every testbed) and
`split.ood_groups`. Split sizes are left out on purpose: with the same seed, a larger test split
takes the rows of a smaller one first (`w2s.core.data.split.assign_splits` cuts the splits from
one permutation), so counting another size as another testbed would let fresh-looking seeds
reuse test rows.

    from w2s.pipeline.seed_ledger import declare, record
    entry = declare(project, spec, points, Path("configs/sweep.yaml"), "sweep-20250101-...")
    record(project, entry)   # re-checks under the ledger's lock, then appends
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s.core.config import stable_hash
from w2s.errors import ConfigError
from w2s.io import write_text

if TYPE_CHECKING:
    from w2s.config import Config
    from w2s.pipeline.sweep_grid import SweepConfig
    from w2s.project import Project

LEDGER = Path("results") / "seed-ledger.json"
VERSION = 1
ABOUT = (
    "Seeds each sweep used, per testbed, appended by `w2s sweep` before any point runs. A sweep "
    "marked confirmatory may use only seeds no earlier entry used on its testbed. Commit this file."
)


def testbed(cfg: Config) -> tuple[str, dict[str, Any]]:
    """The testbed a point's seed draws its rows from: `<data>@<8 hex digits>` and the settings
    hashed (the data section's non-default values and `split.ood_groups`)."""
    settings = {"data": cfg.data.model_dump(mode="json", exclude_defaults=True), "ood_groups": cfg.split.ood_groups}
    source = cfg.data.path or cfg.data.hf_name or cfg.data.name or "data"
    return f"{Path(str(source)).name}@{stable_hash(settings)[:8]}", settings


@dataclass(frozen=True)
class Source:
    """Where a sweep config comes from in git: its path in the repository, HEAD, the protocol's
    files that are not as committed, and whether any other tracked file is modified."""

    path: str | None
    commit: str
    uncommitted: list[str]
    tree_dirty: bool
    root: Path | None = None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def config_source(config: Path | None, base: Path | None) -> Source:
    """The git facts of a sweep config file and of the base config it builds on."""
    if config is None:
        return Source(None, "unknown", [], True)
    config = config.resolve()
    top = _git(config.parent, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return Source(str(config.name), "unknown", [config.name], True)
    root = Path(top.stdout.strip())
    files = [p for p in (config, base.resolve() if base else None) if p is not None and p.is_relative_to(root)]
    rels = [p.relative_to(root).as_posix() for p in files]
    head = _git(root, "rev-parse", "HEAD")
    commit = head.stdout.strip() if head.returncode == 0 else "unknown"
    uncommitted = []
    for rel in rels:
        tracked = _git(root, "ls-files", "--error-unmatch", "--", rel).returncode == 0
        changed = _git(root, "status", "--porcelain", "--", rel).stdout.strip()
        if not tracked or changed or commit == "unknown":
            uncommitted.append(rel)
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    return Source(rels[0], commit, uncommitted, dirty, root)


# What sweeps write (the ledger, stored outputs, the sweep chart) and what documents them: a
# commit that changes only these leaves the protocol of a confirmatory sweep as it was.
OUTPUTS = ("results", "plots", "docs", "*.md")


def same_tree(root: Path, commit: str) -> bool:
    """Whether the working tree's tracked files equal `commit`'s, outside `OUTPUTS`."""
    if commit == "unknown":
        return False
    excluded = [f":(exclude,glob)**/{p}" if "*" in p else f":(exclude){p}" for p in OUTPUTS]
    return _git(root, "diff", "--quiet", commit, "--", ".", *excluded).returncode == 0


def resumable(ledger: dict[str, Any], entry: dict[str, Any], root: Path | None) -> list[str]:
    """The earlier confirmatory sweeps of `ledger` that `entry` resumes: the same config file,
    the same seeds on the same testbeds, and a commit whose tree equals the working tree outside
    `OUTPUTS` (see the module's docstring)."""
    if not entry["confirmatory"] or entry["config"] is None or root is None:
        return []
    same = [
        earlier
        for earlier in ledger["sweeps"]
        if earlier["confirmatory"]
        and earlier["config"] == entry["config"]
        and earlier["seeds"] == entry["seeds"]
        and same_tree(root, earlier["commit"])
    ]
    if any(earlier.get("finished") for earlier in same):  # done: a rerun would be a second look
        return []
    return [earlier["sweep"] for earlier in same]


def declare(
    project: Project,
    spec: SweepConfig,
    points: list[tuple[dict[str, Any], Config]],
    config: Path | None,
    name: str,
) -> dict[str, Any]:
    """The ledger entry of a sweep about to run; raises `ConfigError` (one line) when a
    confirmatory sweep breaks the protocol. Writes nothing."""
    seeds: dict[str, set[int]] = {}
    testbeds: dict[str, dict[str, Any]] = {}
    for _, cfg in points:
        key, settings = testbed(cfg)
        seeds.setdefault(key, set()).add(cfg.seed)
        testbeds[key] = settings
    base = project.root / spec.base if spec.base else None
    source = config_source(config, base)
    entry = {
        "sweep": name,
        "config": source.path,
        "commit": source.commit,
        "uncommitted": source.uncommitted,
        "tree_dirty": source.tree_dirty,
        "confirmatory": spec.confirmatory,
        "seeds": {k: sorted(v) for k, v in sorted(seeds.items())},
        "testbeds": testbeds,
        "date": _now(),
    }
    ledger = read_ledger(project)
    entry["resumes"] = resumable(ledger, entry, source.root)
    check(ledger, entry)
    return entry


def check(ledger: dict[str, Any], entry: dict[str, Any]) -> None:
    """Refuse a confirmatory entry whose protocol is not committed or whose seeds an earlier
    sweep of `ledger` used on the same testbed (naming the seeds, the testbed and that sweep),
    unless that sweep is one the entry `resumes`."""
    if not entry["confirmatory"]:
        return
    if entry["config"] is None:
        raise ConfigError(
            "confirmatory sweep refused: no sweep config file whose commit could be recorded "
            "(start it with `w2s sweep --config FILE`)"
        )
    if entry["uncommitted"]:
        raise ConfigError(
            f"confirmatory sweep refused: {', '.join(entry['uncommitted'])} not as committed in git "
            "(modified or untracked); commit the declared protocol first"
        )
    clashes = []
    resumes = set(entry.get("resumes", []))
    for key, seeds in entry["seeds"].items():
        for earlier in ledger["sweeps"]:
            if earlier["sweep"] in resumes:
                continue
            reused = sorted(set(seeds) & set(earlier["seeds"].get(key, [])))
            if reused:
                kind = "confirmatory" if earlier["confirmatory"] else "exploratory"
                clashes.append(
                    f"seed(s) {', '.join(map(str, reused))} on testbed {key} were used by sweep "
                    f"{earlier['sweep']} ({earlier['config'] or 'no config file'}, {kind}, {earlier['date'][:10]})"
                )
                break
    if clashes:
        raise ConfigError(
            f"confirmatory sweep refused: {'; '.join(clashes)}; a confirmatory sweep needs seeds no "
            f"earlier sweep used on its testbed ({LEDGER}), or resumes one of the same config and "
            f"seeds whose commit equals this tree outside {', '.join(OUTPUTS)}"
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_ledger(project: Project) -> dict[str, Any]:
    """The project's ledger (an empty one when the file does not exist yet)."""
    path = project.root / LEDGER
    if not path.is_file():
        return {"about": ABOUT, "version": VERSION, "sweeps": []}
    try:
        ledger = json.loads(path.read_text())
        if ledger.get("version") != VERSION or not isinstance(ledger.get("sweeps"), list):
            raise ValueError(f"expected version {VERSION} with a list of sweeps")
    except (ValueError, AttributeError) as exc:
        raise ConfigError(f"seed ledger {LEDGER} is unreadable: {exc}") from None
    return ledger


@contextmanager
def _editing(project: Project) -> Iterator[dict[str, Any]]:
    """The ledger, read under its lock and written back, atomically, when the block succeeds."""
    from filelock import FileLock

    project.state.mkdir(parents=True, exist_ok=True)
    with FileLock(str(project.state / "seed-ledger.lock"), timeout=60):
        ledger = read_ledger(project)
        yield ledger
        write_ledger(project, ledger)


def record(project: Project, entry: dict[str, Any]) -> None:
    """Append a declared sweep to the ledger, atomically, re-checking it under the ledger's lock
    (two confirmatory sweeps started at once cannot both take the same seeds)."""
    with _editing(project) as ledger:
        check(ledger, entry)
        ledger["sweeps"].append(entry)


def finish(project: Project, name: str) -> None:
    """Stamp the ledger entry of sweep `name` as finished (its report written): from then on no
    start resumes it."""
    with _editing(project) as ledger:
        for entry in ledger["sweeps"]:
            if entry["sweep"] == name:
                entry["finished"] = _now()


def write_ledger(project: Project, ledger: dict[str, Any]) -> None:
    """The ledger as reviewable JSON (sorted keys, a sweep's seeds on one line), atomically."""
    text = json.dumps(ledger, indent=2, sort_keys=True)
    text = re.sub(r"\[\s*(\d+(?:,\s*\d+)*)\s*\]", lambda m: "[" + ", ".join(m[1].replace(",", " ").split()) + "]", text)
    write_text(project.root / LEDGER, text + "\n")


def run_tags(entry: dict[str, Any]) -> dict[str, str]:
    """The declaration as MLflow tags of the sweep's parent run."""
    return {
        "sweep_config": str(entry["config"]),
        "sweep_config_commit": entry["commit"],
        "sweep_config_uncommitted": ",".join(entry["uncommitted"]) or "none",
        "sweep_confirmatory": str(entry["confirmatory"]).lower(),
        "sweep_seeds": json.dumps(entry["seeds"], sort_keys=True),
        "sweep_resumes": ",".join(entry.get("resumes", [])) or "none",
    }

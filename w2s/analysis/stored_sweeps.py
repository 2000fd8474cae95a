"""A sweep's raw outputs, stored in the repository so that anyone with it can recompute every
table without rerunning a model: `results/<name>/` holds the sweep's record (`sweep.json`: config,
grouping, baseline, seed-ledger entry), its per-seed metric rows (`points.json`) and each point's
per-row test correctness (`point-NNN/test_correct.parquet`). DVC tracks the folder
(`results/<name>.dvc`, committed) and pushes it to the `results` remote, a folder inside the
repository (`results/dvc-store`, committed to git: content-addressed, a few kB per point), so a
fresh clone can pull it with no credentials. The project's default DVC remote is left alone.

    from w2s.analysis.stored_sweeps import load, store
    stored = store(project, Path(".w2s/sweeps/sweep-20250101-120000-abc123"), "paired-tweets")
    record, rows = load(project, "paired-tweets")   # pulled from the `results` remote if absent
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2s.analysis.sweep_report import CORRECT_FILE, SWEEP_FILE, point_dir
from w2s.errors import ServiceUnavailable, W2SError, redact
from w2s.io import copy_file, read_json
from w2s.project import Project

RESULTS_DIR = "results"
REMOTE = "results"  # the DVC remote of stored sweeps
STORE_DIR = "dvc-store"  # its folder, under RESULTS_DIR
POINTS_FILE = "points.json"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
RESERVED = {STORE_DIR, "seed-ledger.json"}
SCORES = ("weak", "w2s", "ceiling")  # the per-row correctness columns, and their `<name>_acc` metrics


@dataclass(frozen=True)
class Stored:
    """A stored sweep: its folder, its `.dvc` file, the md5 DVC recorded, and the files in it."""

    name: str
    path: str
    dvc_file: str
    md5: str
    files: list[str]


def _folder(project: Project, name: str) -> Path:
    if not NAME.fullmatch(name) or name in RESERVED:
        raise W2SError(
            f"stored sweep name '{name}': use lowercase letters, digits, '.', '_' and '-' "
            f"(not {' or '.join(sorted(RESERVED))})"
        )
    return project.root / RESULTS_DIR / name


def check_name(project: Project, name: str) -> Path:
    """The folder a sweep stored as `name` would take: refused when the name is malformed or
    taken, or when the project is not a DVC repository."""
    from w2s.ops.versioning import is_dvc_repo

    target = _folder(project, name)
    if not is_dvc_repo(project):
        raise W2SError(f"{project.root} is not a DVC repository (run `dvc init` there)")
    if target.exists() or target.with_name(f"{name}.dvc").exists():
        raise W2SError(f"{RESULTS_DIR}/{name} is already a stored sweep; choose another name")
    return target


def store(project: Project, sweep_dir: Path, name: str) -> Stored:
    """Copy a finished sweep's raw outputs into `results/<name>/`, `dvc add` it and push it to the
    `results` remote (added to the DVC config, as a folder in the repository, if missing).
    Refuses an unfinished sweep and a name already stored; nothing is left half-copied."""
    target = check_name(project, name)
    record_file, points_file = sweep_dir / SWEEP_FILE, sweep_dir / POINTS_FILE
    for path in (record_file, points_file):
        if not path.is_file():
            raise W2SError(f"{sweep_dir} holds no {path.name}: not a finished sweep of this version of w2s")
    rows = read_json(points_file)
    files = [SWEEP_FILE, POINTS_FILE]
    files += [f"{point_dir(Path(), r['point']).name}/{CORRECT_FILE}" for r in rows]
    missing = [f for f in files if not (sweep_dir / f).is_file()]
    if missing:
        raise W2SError(f"{sweep_dir} lacks {', '.join(missing[:3])}: its raw outputs are incomplete")
    staging = target.with_name(f".{name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for rel in files:
            copy_file(sweep_dir / rel, staging / rel)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    md5 = _add_and_push(project, target)
    return Stored(name, f"{RESULTS_DIR}/{name}", f"{RESULTS_DIR}/{name}.dvc", md5, files)


def _add_and_push(project: Project, folder: Path) -> str:
    """`dvc add` the folder and push it to the `results` remote; on failure, the folder is
    removed again (the store is all or nothing)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from w2s.ops.versioning import dvc_lock, dvc_md5

    dvc_file = folder.with_name(f"{folder.name}.dvc")
    try:
        with dvc_lock(project), Repo(str(project.root)) as repo:
            repo.scm_context.quiet = True
            _ensure_remote(repo)
            repo.add(str(folder))
            repo.push(targets=[str(dvc_file)], remote=REMOTE)
    except (DvcException, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        dvc_file.unlink(missing_ok=True)
        reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise W2SError(f"DVC could not store {folder.relative_to(project.root)}: {reason}") from None
    return dvc_md5(dvc_file)


def _ensure_remote(repo: Any) -> None:
    """The `results` remote, a folder of the repository, unless the DVC config already names one."""
    if REMOTE in repo.config.get("remote", {}):
        return
    import os

    store = Path(repo.root_dir) / RESULTS_DIR / STORE_DIR
    with repo.config.edit("repo") as conf:
        # DVC reads a relative URL given here against the working directory, and writes it to
        # .dvc/config relative to .dvc/ (../results/dvc-store): a clone anywhere finds it
        conf["remote"][REMOTE] = {"url": os.path.relpath(store, Path.cwd())}


def load(project: Project, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A stored sweep's record and per-seed rows, pulled from the `results` remote first when the
    workspace does not hold them (a fresh clone)."""
    folder = _folder(project, name)
    dvc_file = folder.with_name(f"{name}.dvc")
    if not dvc_file.is_file():
        raise W2SError(f"no stored sweep '{name}' ({RESULTS_DIR}/{name}.dvc not found)")
    if not folder.exists():
        pull(project, dvc_file)
    elif _modified(project, dvc_file):  # a file changed, added or missing
        raise W2SError(
            f"{RESULTS_DIR}/{name} differs from the version {RESULTS_DIR}/{name}.dvc records "
            f"(restore it: dvc checkout --force {RESULTS_DIR}/{name}.dvc)"
        )
    return read_json(folder / SWEEP_FILE), read_json(folder / POINTS_FILE)


def _modified(project: Project, dvc_file: Path) -> bool:
    """Whether the workspace copy of a stored sweep differs from what its `.dvc` file records."""
    from dvc.repo import Repo

    from w2s.ops.versioning import dvc_lock

    with dvc_lock(project), Repo(str(project.root)) as repo:
        return bool(repo.status(targets=[str(dvc_file)]))


def pull(project: Project, dvc_file: Path) -> None:
    """Check a stored sweep out of the DVC cache, fetching it from the `results` remote."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from w2s.ops.versioning import dvc_lock

    try:
        with dvc_lock(project), Repo(str(project.root)) as repo:
            repo.pull(targets=[str(dvc_file)], remote=REMOTE)
    except (DvcException, OSError) as exc:
        reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise ServiceUnavailable(f"DVC could not pull {dvc_file.relative_to(project.root)}: {reason}") from None


def row_mismatches(project: Project, name: str, rows: list[dict[str, Any]]) -> list[str]:
    """Points whose stored accuracies differ from the mean of their stored per-row correctness
    (the two raw outputs must tell the same story)."""
    import pandas as pd

    folder = _folder(project, name)
    out = []
    for r in rows:
        frame = pd.read_parquet(folder / point_dir(Path(), r["point"]).name / CORRECT_FILE)
        for col in SCORES:
            acc = r.get(f"{col}_acc")
            if acc is None or abs(float(frame[col].mean()) - float(acc)) > 1e-9:
                out.append(f"point {r['point']} {col}_acc {acc} vs per-row mean {frame[col].mean():.6f}")
    return out

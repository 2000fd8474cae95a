"""Garbage collection: bounded disk for a project that retrains on a schedule.

Removed when older than the retention period:

- cache entries (`<state>/cache/<kind>/<key>`): rebuildable by content hash, and the staging
  folders (`.<key>.*`) of builds whose process died;
- run folders (`<state>/runs/<name>`): the working files of past runs;
- versions of the named registered models that w2s registered (they carry its student cache key)
  and nothing points at, with the files of their logged models.

Never removed: a version with an alias, the `previous_champion` of such a version (what
`w2s rollback` moves back to), a version w2s did not register, a logged model a kept version of
*any* registered model shares, and the cache entry and run folder of every kept version of any
registered model in the store. MLflow run and experiment records are never deleted, soft-deleted
ones included (a user's tidy-up in the MLflow UI stays undoable), and neither is the DVC remote:
`w2s lineage` and `w2s reproduce` of every kept version work after a collection.

A collection needs the project idle (it holds the activity lock exclusively: no run, sweep or DVC
stage is at work, and none starts until it is done), holds the promotion lock of each model it
collects (no gate, registration or rollback interleaves), and first marks KILLED the runs that
killed processes left RUNNING.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from w2s.errors import W2SError
from w2s.ops import activity, model_registry
from w2s.ops.promotion import promotion_lock
from w2s.ops.tracking import client
from w2s.project import Project

DAY_S = 86400.0
MIN_AGE_DAYS = 1 / 24  # younger files may belong to a run that has only just finished


@dataclass
class Collection:
    """What a collection removed (or, in a dry run, would remove) and what it kept on purpose."""

    cache_entries: list[str] = field(default_factory=list)
    run_folders: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    logged_models: list[str] = field(default_factory=list)
    kept_versions: list[str] = field(default_factory=list)
    killed_runs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _age_s(path: Path, now: float) -> float:
    """Seconds since the entry was last written (its newest file, or the folder itself)."""
    newest = max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*") if p.is_file()])
    return now - newest


def model_id_of(version: Any) -> str | None:
    """The logged model behind a version (MLflow 3 registers `models:/<model id>`)."""
    if getattr(version, "model_id", None):
        return str(version.model_id)
    source = str(version.source or "")
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def check_age(older_than_days: float, force: bool) -> None:
    """Refuse a retention that is not a finite number of days >= 0, or under an hour unless forced."""
    if not math.isfinite(older_than_days) or older_than_days < 0:
        raise W2SError(f"--older-than must be a finite number of days >= 0, got {older_than_days}")
    if older_than_days < MIN_AGE_DAYS and not force:
        raise W2SError(
            f"--older-than {older_than_days:g} days is under one hour: a run that has just finished may "
            "still be read (by a gate, a reproduction); add --force to collect it anyway"
        )


@dataclass(frozen=True)
class Protected:
    """What the registry still needs: versions, their logged models, student keys and runs."""

    versions: dict[str, set[str]]  # model name -> versions kept
    logged_models: set[str]
    student_keys: set[str]
    run_names: set[str]


def _all_versions(name: str) -> list[Any]:
    c = client()
    found, token = [], None
    while True:
        page = c.search_model_versions(f"name='{name}'", max_results=200, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _registered_names() -> list[str]:
    c = client()
    names, token = [], None
    while True:
        page = c.search_registered_models(max_results=100, page_token=token)
        names += [m.name for m in page]
        token = page.token
        if not token:
            return names


def protected(collect: list[str], notes: list[str]) -> tuple[Protected, list[Any]]:
    """The kept set of every registered model in the store, and the collectable versions of the
    models in `collect`: versions w2s registered that no alias needs. Every version of a model
    not being collected is kept, and so are its students' cache entries and run folders."""
    c = client()
    kept: dict[str, set[str]] = {}
    models: set[str] = set()
    keys: set[str] = set()
    runs: set[str] = set()
    candidates = []
    for name in _registered_names():
        by_number = {str(v.version): v for v in _all_versions(name)}
        keep = set(by_number)
        if name in collect:
            aliased = {str(v) for v in c.get_registered_model(name).aliases.values()} & keep
            needed = aliased | {p for v in aliased if (p := by_number[v].tags.get("previous_champion")) in by_number}
            ours = {n for n, v in by_number.items() if model_registry.STUDENT_KEY_TAG in v.tags}
            foreign = sorted(keep - ours - needed, key=int)
            if foreign:
                notes.append(f"{name}: version(s) {', '.join(foreign)} were not registered by w2s and are left alone")
            candidates += [by_number[n] for n in sorted(ours - needed, key=int)]
            keep = needed | set(foreign)
        kept[name] = keep
        for number in keep:
            v = by_number[number]
            if (model_id := model_id_of(v)) is not None:
                models.add(model_id)
            keys.add(v.tags.get(model_registry.STUDENT_KEY_TAG, ""))
            if run_name := _run_name(v):
                runs.add(run_name)
    return Protected(kept, models, keys - {""}, runs), candidates


def _run_name(version: Any) -> str | None:
    """The run folder name of the pipeline run behind a version (None when its run is gone)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_run(model_registry.pipeline_run_id(version)).info.run_name
    except MlflowException:
        return None


def collect(
    project: Project,
    model_names: list[str],
    older_than_days: float,
    dry_run: bool,
    force: bool = False,
    serialise: Callable[[Project, str], AbstractContextManager[None]] | None = None,
    wait_s: float = 0.0,
    on_wait: Callable[[], None] | None = None,
) -> Collection:
    """Remove what is older than `older_than_days` and not protected (see the module docstring).
    `serialise(project, model)` is the promotion lock (default: the project's file lock);
    `on_wait` is told when gc starts waiting for runs at work."""
    check_age(older_than_days, force)
    out = Collection(dry_run=dry_run)
    with activity.idle(project, wait_s, on_wait), ExitStack() as held:
        for name in sorted(set(model_names)):
            held.enter_context((serialise or promotion_lock)(project, name))
        experiments = [e.experiment_id for e in client().search_experiments()]
        if not dry_run:
            out.killed_runs = activity.reap_dead_runs(experiments)
        _collect_locked(project, model_names, older_than_days * DAY_S, out)
    return out


def _collect_locked(project: Project, model_names: list[str], cutoff_s: float, out: Collection) -> None:
    now = time.time()
    keep, candidates = protected(model_names, out.notes)
    out.kept_versions = [f"{n}/{v}" for n, vs in sorted(keep.versions.items()) for v in sorted(vs, key=int)]

    def sweep(folders: list[Path], kept: set[str], root: Path) -> list[str]:
        gone = []
        for folder in sorted(folders):
            # a staging folder (`.<key prefix>.<random>`) is never kept: the project is idle,
            # so the build that made it died; it goes once old like any entry
            if folder.name in kept or _age_s(folder, now) < cutoff_s:
                continue
            gone.append(str(folder.relative_to(root)))
            out.bytes_freed += _size(folder)
            if not out.dry_run:
                shutil.rmtree(folder, ignore_errors=True)
        return gone

    entries = [p for p in project.cache_dir.glob("*/*") if p.is_dir() and not p.parent.name.startswith(".")]
    out.cache_entries = sweep(entries, keep.student_keys, project.cache_dir)
    runs = [p for p in project.runs_dir.glob("*") if p.is_dir()]
    out.run_folders = sweep(runs, keep.run_names, project.runs_dir)

    doomed = [v for v in candidates if now - v.creation_timestamp / 1000 >= cutoff_s]
    out.versions = [f"{v.name}/{v.version}" for v in doomed]
    doomed_models = sorted({m for v in doomed if (m := model_id_of(v)) is not None} - keep.logged_models)
    out.logged_models = doomed_models
    out.bytes_freed += sum(_logged_model_bytes(m) for m in doomed_models)
    if not out.dry_run:
        c = client()
        for v in doomed:
            c.delete_model_version(v.name, str(v.version))
        for model_id in doomed_models:
            out.notes += _delete_logged_model(model_id)


def _logged_model_bytes(model_id: str) -> int:
    """Bytes of a logged model's files when they are on this machine's disk, else 0."""
    location = client().get_logged_model(model_id).artifact_location
    if location.startswith("file://"):
        folder = Path(location.removeprefix("file://"))
        return _size(folder) if folder.exists() else 0
    return 0


def _delete_logged_model(model_id: str) -> list[str]:
    """Mark a logged model deleted and remove its files through its artifact store (a local
    folder, or a tracking server's proxied store). The record stays, marked deleted: nothing
    here runs `mlflow gc`, which would also purge every run and experiment a user soft-deleted."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    c = client()
    location = c.get_logged_model(model_id).artifact_location
    c.delete_logged_model(model_id)
    try:
        get_artifact_repository(location).delete_artifacts()
    except Exception as exc:  # noqa: BLE001 - the store decides what it supports; say what is left
        return [f"logged model {model_id} is marked deleted, but its files at {location} stay ({exc})"]
    return []

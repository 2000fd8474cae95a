"""Garbage collection: bounded disk for a project that retrains on a schedule.

Removed when older than the retention period:

- cache entries (`<state>/cache/<kind>/<key>`): rebuildable by content hash;
- run folders (`<state>/runs/<name>`): the working files of past runs;
- registered model versions nobody points at, with their logged model's files.

Never removed: a version with an alias, the `previous_champion` of such a version (what
`w2s rollback` moves back to), a logged model another kept version shares, the cache entry of a
kept version's student, and the run folder of a kept version's run. MLflow run records (params,
metrics, tags, lineage, the config `w2s reproduce` needs) and the DVC remote are not touched:
`w2s lineage` and `w2s reproduce` of every kept version work after a collection.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from w2s.errors import W2SError
from w2s.ops import registry
from w2s.ops.tracking import client
from w2s.project import Project

DAY_S = 86400.0


@dataclass
class Collection:
    """What a collection removed (or, in a dry run, would remove) and what it kept on purpose."""

    cache_entries: list[str] = field(default_factory=list)
    run_folders: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    logged_models: list[str] = field(default_factory=list)
    kept_versions: list[str] = field(default_factory=list)
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


@dataclass(frozen=True)
class Protected:
    """What the registry still needs: versions, their logged models, student keys and runs."""

    versions: dict[str, set[str]]  # model name -> versions kept
    logged_models: set[str]
    student_keys: set[str]
    run_names: set[str]


def protected(model_names: list[str]) -> tuple[Protected, list[Any]]:
    """The kept set of every registered model in `model_names`, and the versions outside it."""
    c = client()
    kept: dict[str, set[str]] = {}
    models: set[str] = set()
    keys: set[str] = set()
    runs: set[str] = set()
    candidates = []
    for name in model_names:
        model = registry.registered_model(name)
        if model is None:  # nothing registered under this name yet: nothing to protect
            continue
        versions = c.search_model_versions(f"name='{name}'")
        aliased = {str(v) for v in model.aliases.values()}
        by_number = {str(v.version): v for v in versions}
        keep = set(aliased)
        keep |= {p for v in aliased if (p := by_number[v].tags.get("previous_champion")) in by_number}
        kept[name] = keep
        for number, v in by_number.items():
            if number in keep:
                if (model_id := model_id_of(v)) is not None:
                    models.add(model_id)
                keys.add(v.tags.get(registry.STUDENT_KEY_TAG, ""))
                runs.add(c.get_run(registry.pipeline_run_id(v)).info.run_name)
            else:
                candidates.append(v)
    return Protected(kept, models, keys - {""}, runs), candidates


def collect(project: Project, model_names: list[str], older_than_days: float, dry_run: bool) -> Collection:
    """Remove what is older than `older_than_days` and not protected (see the module docstring)."""
    if older_than_days < 0:
        raise W2SError(f"--older-than must be a number of days >= 0, got {older_than_days}")
    now = time.time()
    cutoff_s = older_than_days * DAY_S
    out = Collection(dry_run=dry_run)
    keep, candidates = protected(model_names)
    out.kept_versions = [f"{n}/{v}" for n, vs in keep.versions.items() for v in sorted(vs, key=int)]

    def sweep(folders: list[Path], kept: set[str], root: Path) -> list[str]:
        # a staging folder of a running build (dot name), a kept one, or a recent one stays
        gone = []
        for folder in sorted(folders):
            if folder.name.startswith(".") or folder.name in kept or _age_s(folder, now) < cutoff_s:
                continue
            gone.append(str(folder.relative_to(root)))
            out.bytes_freed += _size(folder)
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
        return gone

    entries = [p for p in project.cache_dir.glob("*/*") if p.is_dir() and not p.parent.name.startswith(".")]
    out.cache_entries = sweep(entries, keep.student_keys, project.cache_dir)
    runs = [p for p in project.runs_dir.glob("*") if p.is_dir()]
    out.run_folders = sweep(runs, keep.run_names, project.runs_dir)

    doomed_models = []
    for v in sorted(candidates, key=lambda v: (v.name, int(v.version))):
        if now - v.creation_timestamp / 1000 < cutoff_s:
            continue
        out.versions.append(f"{v.name}/{v.version}")
        model_id = model_id_of(v)
        if model_id and model_id not in keep.logged_models and model_id not in doomed_models:
            doomed_models.append(model_id)
    out.logged_models = doomed_models
    out.bytes_freed += sum(_logged_model_bytes(m) for m in doomed_models)
    if not dry_run:
        c = client()
        for ref in out.versions:
            name, number = ref.rsplit("/", 1)
            c.delete_model_version(name, number)
        for model_id in doomed_models:
            c.delete_logged_model(model_id)
        if doomed_models:
            out.notes += _purge(project, doomed_models)
    return out


def _logged_model_bytes(model_id: str) -> int:
    """Bytes of a logged model's files when they are on this machine's disk, else 0."""
    location = client().get_logged_model(model_id).artifact_location
    if location.startswith("file://"):
        folder = Path(location.removeprefix("file://"))
        return _size(folder) if folder.exists() else 0
    return 0


def _purge(project: Project, model_ids: list[str]) -> list[str]:
    """Permanently delete the files of deleted logged models (`mlflow gc`). A local store is
    purged here; a tracking server's files are purged by whoever runs its backend store."""
    uri = project.tracking_uri()
    if not uri.startswith("sqlite:"):
        return [
            f"{len(model_ids)} logged model(s) are marked deleted on {uri}; their files go when the "
            "server's administrator runs `mlflow gc --backend-store-uri <its store>`"
        ]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "mlflow", "gc"),
            *("--backend-store-uri", uri, "--tracking-uri", uri, "--logged-model-ids", ",".join(model_ids)),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise W2SError(f"mlflow gc failed to purge the deleted models: {tail}")
    return []

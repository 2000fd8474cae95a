"""Lineage: the facts recorded on every run and model version (code, params, data identity), the
chain behind a registered version, and recovery of the exact files in it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from w2s.config import Config
from w2s.errors import W2SError
from w2s.io import file_md5
from w2s.ops import model_registry
from w2s.ops.tracking import client
from w2s.ops.versioning import fetch_object, restore_directory
from w2s.project import Project

GIT_COMMIT_ENV = "W2S_GIT_COMMIT"


def git_commit(root: Path) -> str:
    """HEAD of the project's git repository, suffixed `-dirty` when tracked files changed."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        # An image built without .git records its commit at build time (infra/worker/Dockerfile).
        baked = os.environ.get(GIT_COMMIT_ENV, "")
        return baked if re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", baked) else "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def params_hash(cfg: Config) -> str:
    """Hash of the whole validated config (defaults included), so equal runs share it."""
    return cfg.section_hash()


def method_name(cfg: Config) -> str:
    """The W2S method a run used, as recorded in the `method` tag."""
    return f"{cfg.method}/{cfg.strong.loss}"


def source_files(cfg: Config, project: Project) -> list[Path]:
    """The files a run's data section reads: none for a dataset read from the hub, every file of
    the folder for a local copy of a dataset or task (`data.hf_name=FOLDER`)."""
    from w2s.core.data import bundled, suite
    from w2s.core.data.sources import local_dataset

    if cfg.data.path:
        return [project.resolve_inside(cfg.data.path)]
    local = local_dataset(cfg.data, project)
    if local is not None:
        return sorted(f for f in local.rglob("*") if f.is_file())
    if cfg.data.hf_name or cfg.data.name in suite.TASKS:
        return []
    assert cfg.data.name is not None
    return [project.data_dir / f for f in bundled.corpus(cfg.data.name).files]


def data_version(cfg: Config, project: Project) -> dict[str, str]:
    """Lineage tags naming the DVC version of the raw data a run reads.

    `data_dvc_md5` is the md5 of the tracked output (`data.dvc`'s `.dir` md5 for the bundled
    corpora); `data_in_dvc` says whether every file read matches that version byte for byte, i.e.
    whether the version can be fetched back from DVC. A file edited since `dvc add` is flagged.
    """
    from w2s.ops.versioning import tracked

    files = source_files(cfg, project)
    if not files or not (project.root / ".dvc").is_dir():
        return {"data_in_dvc": "no (not a DVC repository)" if files else "no (Hugging Face dataset)"}
    rel = [f.relative_to(project.root).as_posix() if f.is_relative_to(project.root) else str(f) for f in files]
    infos = [tracked(project, f) for f in files]
    tags = {"data_files": ",".join(rel)}
    if any(i is None for i in infos) or len({i.out_md5 for i in infos if i}) != 1:
        return {**tags, "data_in_dvc": "no (not tracked by one .dvc file)"}
    first = infos[0]
    assert first is not None
    tags.update(data_dvc_file=first.dvc_file, data_dvc_md5=first.out_md5)
    stale = [r for r, f, i in zip(rel, files, infos, strict=True) if i and i.file_md5 != file_md5(f)]
    tags["data_in_dvc"] = "yes" if not stale else f"no ({stale[0]} changed since `dvc add`)"
    return tags


def snapshot_targets(cfg: Config, project: Project) -> list[Path]:
    """What to `dvc add` before a retrain: the tracked outputs covering the data read, else the files."""
    from w2s.core.data.sources import local_dataset
    from w2s.ops.versioning import tracked

    local = local_dataset(cfg.data, project)
    targets: list[Path] = []
    for f in source_files(cfg, project):
        if not f.is_relative_to(project.root):
            continue  # DVC versions files inside the repository only
        info = tracked(project, f)
        if info:
            out = project.root / info.dvc_file.removesuffix(".dvc")
        elif f.is_relative_to(project.data_dir):  # untracked: version data/ whole, as `w2s data fetch` does
            out = project.data_dir
        else:  # else the dataset folder it belongs to, or the file
            out = local if local is not None and f.is_relative_to(local) else f
        if out not in targets:
            targets.append(out)
    return targets


def recorded_config(run_id: str) -> dict[str, Any]:
    """The exact config a pipeline run used (its `config.json` artifact)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client().download_artifacts(run_id, "config.json", tmp)
        except Exception:
            raise W2SError(f"run {run_id} has no config.json (it predates recorded configs)") from None
        return json.loads(Path(path).read_text())


def _config_or_none(run_id: str) -> dict[str, Any] | None:
    try:
        return recorded_config(run_id)
    except W2SError:  # a run from before configs were recorded: the rest of the chain still stands
        return None


# Tags of a shared registry are written by anyone who can reach the tracking server: every value
# that becomes a git argument or a path is checked first.
_COMMIT = re.compile(r"[0-9a-f]{7,40}")
_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


def checked_md5(md5: str, what: str) -> str:
    """`md5` if it is a DVC object id (32 hex digits, `.dir` for a folder), else a W2SError."""
    if not _MD5.fullmatch(md5):
        raise W2SError(f"{what}: recorded md5 {md5!r} is not a DVC object id")
    return md5


def contained(dest: Path, relpath: str, what: str) -> Path:
    """`dest / relpath`, refused unless it stays inside `dest` (no absolute path, no `..` out)."""
    target = (dest / relpath).resolve()
    if Path(relpath).is_absolute() or not target.is_relative_to(dest.resolve()):
        raise W2SError(f"{what}: recorded path {relpath!r} leads outside {dest}")
    return target


def _committed_md5(project: Project, commit: str, dvc_path: str) -> str | None:
    """The md5 a `.dvc` file held at a git commit, or None when it was not committed there (or
    the recorded commit is not a commit hash: it never reaches git then)."""
    if not _COMMIT.fullmatch(commit) or dvc_path.startswith("-") or ".." in Path(dvc_path).parts:
        return None
    shown = subprocess.run(
        ["git", "-C", str(project.root), "show", f"{commit}:{dvc_path}"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        return None
    return str(yaml.safe_load(shown.stdout)["outs"][0]["md5"])


def _remote_url(project: Project) -> str | None:
    from dvc.repo import Repo

    with Repo(str(project.root)) as repo:
        name = repo.config.get("core", {}).get("remote")
        return repo.config["remote"][name]["url"] if name else None


def _fetch_routes(
    project: Project, ref: str, path: str | None, md5: str | None, commit: str, option: str
) -> dict[str, str]:
    """Every way to get one recorded file back, best first."""
    if not path or not md5:
        return {}
    routes = {"w2s": f"w2s lineage {ref} {option} OUT   # by md5 from the DVC cache or remote, verified"}
    url = _remote_url(project) if (project.root / ".dvc").is_dir() else None
    if url:
        routes["remote_object"] = f"{url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"
    clean = commit.removesuffix("-dirty")
    if clean != "unknown" and _committed_md5(project, clean, f"{path}.dvc") == md5:
        routes["dvc_get"] = f"dvc get {project.root} {path} --rev {clean} -o OUT"
        routes["dvc_api"] = f"dvc.api.open({path!r}, repo={str(project.root)!r}, rev={clean!r}, mode='rb')"
    return routes


def lineage(ref: str, project: Project) -> dict[str, Any]:
    """Everything recorded about how a model version was made, as one JSON-able mapping."""
    version = model_registry.resolve_version(ref)
    name, number = version.name, str(version.version)
    parent_id = model_registry.pipeline_run_id(version)
    parent = client().get_run(parent_id)
    tags = {**parent.data.tags, **version.tags}
    model = client().get_registered_model(name)
    aliases = sorted(a for a, v in (model.aliases or {}).items() if str(v) == number)
    commit = tags.get("git_commit", "unknown")
    canonical = f"{name}/{number}"
    weak_run = tags.get("weak_model_run_id")
    weak_params = client().get_run(weak_run).data.params if weak_run else {}
    return {
        "model": canonical,
        "aliases": aliases,
        "mlflow_run_id": parent_id,
        "model_run_id": version.run_id,
        "prefect_flow_run_id": tags.get("prefect_flow_run_id"),
        "git_commit": commit,
        "params_hash": tags.get("params_hash"),
        "method": tags.get("method"),
        "params": _config_or_none(parent_id),
        "data": {
            "table_md5": tags.get("data_md5"),
            "files": tags.get("data_files"),
            "dvc_file": tags.get("data_dvc_file"),
            "dvc_md5": tags.get("data_dvc_md5"),
            "in_dvc": tags.get("data_in_dvc"),
            "fetch": _fetch_routes(
                project,
                canonical,
                tags.get("data_dvc_file", "").removesuffix(".dvc") or None,
                tags.get("data_dvc_md5"),
                commit,
                "--fetch-data",
            ),
        },
        "weak_labels": {
            "md5": tags.get("weak_labels_md5"),
            "path": tags.get("weak_labels_path"),
            "in_dvc": tags.get("weak_labels_in_dvc"),
            "fetch": _fetch_routes(
                project,
                canonical,
                tags.get("weak_labels_path"),
                tags.get("weak_labels_md5"),
                commit,
                "--fetch-weak-labels",
            ),
        },
        "student_labels_md5": tags.get("student_labels_md5"),
        "strong_model": {
            "base": tags.get("strong_base_model"),
            "adapter": tags.get("strong_adapter"),
            "trainable_params": tags.get("strong_trainable_params"),
        },
        "weak_model": {
            "run_id": weak_run,
            "kind": weak_params.get("kind") or weak_params.get("weak.kind"),
            "params": dict(weak_params),
        },
        "metrics": dict(parent.data.metrics),
        "promotion": {
            k: tags[k] for k in ("promotion_decision", "promotion_reasons", "previous_champion") if k in tags
        },
    }


def fetch_weak_labels(info: dict[str, Any], project: Project, dest: Path) -> str:
    """Recover the exact weak-label file of a lineage record into `dest`; return its source."""
    md5 = info["weak_labels"]["md5"]
    if not md5 or info["weak_labels"].get("in_dvc") != "yes":
        raise W2SError(f"{info['model']}: its weak labels were not versioned with DVC, so they cannot be fetched")
    where = fetch_object(project, checked_md5(md5, info["model"]), dest)
    assert file_md5(dest) == md5
    return where


def fetch_data(info: dict[str, Any], project: Project, dest: Path) -> list[str]:
    """Recover the DVC-tracked data version a model was trained on; `dest` stands for the project
    root, so the tracked output lands at its project-relative path (e.g. `dest/data/...`)."""
    data = info["data"]
    if data.get("in_dvc") != "yes" or not data.get("dvc_md5"):
        raise W2SError(
            f"{info['model']}: its data was not a DVC version ({data.get('in_dvc')}); it cannot be fetched back"
        )
    md5 = checked_md5(data["dvc_md5"], info["model"])
    out = contained(dest, data["dvc_file"].removesuffix(".dvc"), info["model"])
    rel = out.relative_to(dest.resolve())
    if md5.endswith(".dir"):
        return [f"{rel}/{p}" for p in restore_directory(project, md5, out)]
    fetch_object(project, md5, out)
    return [str(rel)]

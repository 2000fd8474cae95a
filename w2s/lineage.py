"""Lineage facts recorded on every run and model version: code, params and data identity."""

from __future__ import annotations

import subprocess
from pathlib import Path

from w2s.config import Config
from w2s.io import file_md5
from w2s.project import Project


def git_commit(root: Path) -> str:
    """HEAD of the project's git repository, suffixed `-dirty` when tracked files changed."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def params_hash(cfg: Config) -> str:
    """Hash of the whole validated config (defaults included), so equal runs share it."""
    return cfg.section_hash()


def method_name(cfg: Config) -> str:
    """The W2S method a run used, as recorded in the `method` tag."""
    return f"{cfg.method}/{cfg.strong.loss}"


def source_files(cfg: Config, project: Project) -> list[Path]:
    """The files a run's data section reads (none for a Hugging Face dataset)."""
    from w2s.data import bundled

    if cfg.data.path:
        return [project.resolve_inside(cfg.data.path)]
    if cfg.data.hf_name:
        return []
    assert cfg.data.name is not None
    return [project.data_dir / f for f in bundled.corpus(cfg.data.name).files]


def data_version(cfg: Config, project: Project) -> dict[str, str]:
    """Lineage tags naming the DVC version of the raw data a run reads.

    `data_dvc_md5` is the md5 of the tracked output (`data.dvc`'s `.dir` md5 for the bundled
    corpora); `data_in_dvc` says whether every file read matches that version byte for byte, i.e.
    whether the version can be fetched back from DVC. A file edited since `dvc add` is flagged.
    """
    from w2s.dvcstore import tracked

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
    from w2s.dvcstore import tracked

    targets: list[Path] = []
    for f in source_files(cfg, project):
        if not f.is_relative_to(project.root):
            continue  # DVC versions files inside the repository only
        info = tracked(project, f)
        if info:
            out = project.root / info.dvc_file.removesuffix(".dvc")
        else:  # untracked: version data/ as a whole (as `w2s data fetch` does), else the file
            out = project.data_dir if f.is_relative_to(project.data_dir) else f
        if out not in targets:
            targets.append(out)
    return targets

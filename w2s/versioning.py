"""DVC versioning of data and weak labels: `dvc add` into the cache, `dvc push` to the remote.

DVC's own repository lock fails (rather than waits) when two commands overlap, so every DVC
operation here is serialised through a file lock in the state folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from w2s.errors import W2SError
from w2s.project import Project


@dataclass(frozen=True)
class Versioned:
    """A DVC-tracked path: its md5, its .dvc file, and the remote it was pushed to."""

    path: str
    md5: str
    dvc_file: str
    remote: str | None


def _lock(project: Project):
    from filelock import FileLock

    project.state.mkdir(parents=True, exist_ok=True)
    return FileLock(str(project.state / "dvc.lock"), timeout=600)


def is_dvc_repo(project: Project) -> bool:
    return (project.root / ".dvc").is_dir()


def dvc_md5(dvc_file: Path) -> str:
    """The md5 recorded in a `.dvc` file (a directory's ends in `.dir`)."""
    meta = yaml.safe_load(dvc_file.read_text())
    return str(meta["outs"][0]["md5"])


def add_and_push(project: Project, path: Path, push: bool = True) -> Versioned:
    """Track `path` with DVC (content goes to the cache) and push it to the default remote."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not is_dvc_repo(project):
        raise W2SError(f"{project.root} is not a DVC repository (run `dvc init` there)")
    rel = path.resolve().relative_to(project.root)
    dvc_file = project.root / f"{rel}.dvc"
    try:
        with _lock(project), Repo(str(project.root)) as repo:
            repo.scm_context.quiet = True  # the CLI reports the .dvc file itself
            # absolute paths: DVC resolves relative ones against the process's cwd, not the repo
            repo.add(str(project.root / rel))
            remote = repo.config.get("core", {}).get("remote")
            if push and remote:
                repo.push(targets=[str(dvc_file)])
    except DvcException as exc:
        raise W2SError(f"DVC could not version {rel}: {str(exc).strip()}") from None
    return Versioned(str(rel), dvc_md5(dvc_file), str(dvc_file.relative_to(project.root)),
                     remote if push else None)

"""DVC versioning of data and weak labels: `dvc add` into the cache and `dvc push` to the remote, and
recovery of any version by its md5 from the local cache or a remote.

DVC's own repository lock fails (rather than waits) when two commands overlap, so every DVC
operation here is serialised through a file lock in the state folder. DVC stores every version
content-addressed (`files/md5/ab/cdef…`), so a file recorded by md5 on a model version can be
fetched years later, after the working copy, the `.dvc` file and the local cache moved on, as
long as one remote still holds it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from w2s.errors import ServiceUnavailable, W2SError, redact
from w2s.io import atomic_path, file_md5
from w2s.project import Project


@dataclass(frozen=True)
class Versioned:
    """A DVC-tracked path: its md5, its .dvc file, and the remote it was pushed to."""

    path: str
    md5: str
    dvc_file: str
    remote: str | None


def dvc_lock(project: Project):
    """The project's DVC lock: DVC's own repository lock fails rather than waits, so w2s queues here."""
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
    with dvc_lock(project), Repo(str(project.root)) as repo:
        repo.scm_context.quiet = True  # the CLI reports the .dvc file itself
        try:
            # absolute paths: DVC resolves relative ones against the process's cwd, not the repo
            repo.add(str(project.root / rel))
        except DvcException as exc:
            raise W2SError(f"DVC could not version {rel}: {str(exc).strip()}") from None
        remote = repo.config.get("core", {}).get("remote")
        if push and remote:
            try:
                repo.push(targets=[str(dvc_file)])
            except (DvcException, OSError) as exc:  # OSError: a local or mounted remote's path
                # the file is versioned in the cache; the remote did not take it: a transient fault
                # the stage's retries ride out (the add above is a no-op the second time)
                reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                raise ServiceUnavailable(f"DVC remote '{remote}' did not take {rel}: {reason}") from None
    return Versioned(str(rel), dvc_md5(dvc_file), str(dvc_file.relative_to(project.root)), remote if push else None)


@dataclass(frozen=True)
class Tracked:
    """Where a project file sits in DVC: the `.dvc` file covering it and the md5s recorded there."""

    dvc_file: str
    out_md5: str  # the md5 of the tracked output (ends in `.dir` for a directory)
    file_md5: str | None  # the file's own md5 inside a tracked directory (None: not listed)
    relpath: str  # the file's path inside the tracked output ("" when the output is the file)


def remotes(project: Project) -> tuple[str | None, dict[str, str]]:
    """The default remote's name and every remote's URL (credentials in a URL redacted)."""
    from dvc.repo import Repo

    with Repo(str(project.root)) as repo:
        urls = {name: redact(str(conf.get("url", ""))) for name, conf in repo.config.get("remote", {}).items()}
        return repo.config.get("core", {}).get("remote"), urls


def _stores(project: Project) -> list[tuple[str, Any]]:
    """The object stores to search: the local cache first, then every remote (default first)."""
    from dvc.repo import Repo

    with Repo(str(project.root)) as repo:
        remotes = list(repo.config.get("remote", {}))
        default = repo.config.get("core", {}).get("remote")
        return [
            ("local cache", repo.cache.local),
            *[(f"remote '{n}'", repo.cloud.get_remote(n).odb) for n in sorted(remotes, key=lambda n: n != default)],
        ]


def fetch_object(project: Project, md5: str, dest: Path) -> str:
    """Copy the object with this md5 to `dest` (atomically, verified); return where it came from."""
    looked = []
    for where, odb in _stores(project):
        src = odb.oid_to_path(md5)
        looked.append(where)
        if not odb.fs.exists(src):
            continue
        with atomic_path(dest) as tmp:
            odb.fs.get_file(src, str(tmp))
            got = file_md5(tmp)
            if got != md5.removesuffix(".dir"):
                raise W2SError(f"DVC object {md5} in the {where} is corrupt (md5 {got})")
        return where
    raise W2SError(f"DVC object {md5} is in none of: {', '.join(looked)}")


def read_manifest(project: Project, dir_md5: str) -> list[dict[str, str]]:
    """The file list (`md5`, `relpath`) of a DVC-tracked directory version (cache or remote)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        fetch_object(project, dir_md5, path)
        return json.loads(path.read_text())


def restore_directory(project: Project, dir_md5: str, dest: Path) -> list[str]:
    """Materialise a tracked directory version into `dest`; return the relative paths written."""
    if not dir_md5.endswith(".dir"):
        raise W2SError(f"{dir_md5} is not the md5 of a DVC-tracked directory")
    dest.mkdir(parents=True, exist_ok=True)
    entries = read_manifest(project, dir_md5)
    for entry in entries:
        target = (dest / entry["relpath"]).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise W2SError(f"DVC manifest {dir_md5} names a path outside the folder: {entry['relpath']}")
        fetch_object(project, entry["md5"], target)
    return [e["relpath"] for e in entries]


def tracked(project: Project, path: Path) -> Tracked | None:
    """The `.dvc` file covering `path` (the file itself or a parent folder), or None."""
    path = path.resolve()
    if not path.is_relative_to(project.root):
        return None
    for out in [path, *path.parents]:
        if not out.is_relative_to(project.root) or out == project.root:
            break
        dvc_file = out.with_name(out.name + ".dvc")
        if not dvc_file.is_file():
            continue
        meta = yaml.safe_load(dvc_file.read_text())
        out_md5 = str(meta["outs"][0]["md5"])
        rel = path.relative_to(out).as_posix() if out != path else ""
        listed = _listed_md5(project, out_md5, rel) if out_md5.endswith(".dir") else out_md5
        return Tracked(str(dvc_file.relative_to(project.root)), out_md5, listed, rel)
    return None


def _listed_md5(project: Project, dir_md5: str, relpath: str) -> str | None:
    """A file's md5 in a directory version's manifest (local cache first, then the remotes)."""
    try:
        entries = read_manifest(project, dir_md5)
    except W2SError:
        return None
    for entry in entries:
        if entry["relpath"] == relpath:
            return str(entry["md5"])
    return None

"""Create a new project: a git + DVC repository holding data files, `params.yaml` and a DVC remote.
(`w2s.pipeline.project_template.new_project` adds the pipeline's files for `w2s init`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def _run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def init_project(root: Path, data_files: list[Path], params: dict[str, Any], remote: Path | str) -> Path:
    """Make `root` a committed git + DVC repository with `data_files` copied into data/ (which DVC,
    not git, tracks), `params` as params.yaml, and `remote` as the default DVC remote."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    for src in data_files:
        shutil.copyfile(src, root / "data" / src.name)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / ".gitignore").write_text("/data\n.w2s/\n")
    _run("git", "init", "-q", cwd=root)
    _run("git", "config", "user.email", "w2s@example.com", cwd=root)
    _run("git", "config", "user.name", "w2s", cwd=root)
    dvc = (sys.executable, "-m", "dvc")
    _run(*dvc, "init", "-q", cwd=root)
    _run(*dvc, "config", "core.analytics", "false", cwd=root)
    _run(*dvc, "remote", "add", "-d", "local", str(remote), cwd=root)
    _run("git", "add", "-A", cwd=root)
    _run("git", "commit", "-q", "-m", "project", cwd=root)
    return root


def commit(root: Path, message: str) -> None:
    """Commit everything in the project's git repository."""
    _run("git", "add", "-A", cwd=root)
    _run("git", "commit", "-q", "-m", message, cwd=root)

"""Lineage facts recorded on every run and model version: code, params and data identity."""

from __future__ import annotations

import subprocess
from pathlib import Path

from w2s.config import Config


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

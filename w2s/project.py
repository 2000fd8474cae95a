"""Where a project keeps things: its root, the state folder, data, caches and run folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from w2s.errors import ConfigError

STATE_DIR = ".w2s"


@dataclass(frozen=True)
class Project:
    """Paths of one w2s project (a git + DVC repository holding `params.yaml`)."""

    root: Path

    @classmethod
    def discover(cls, start: str | Path | None = None) -> Project:
        """The project at `W2S_PROJECT_DIR`, else the current directory."""
        root = Path(start or os.environ.get("W2S_PROJECT_DIR") or Path.cwd()).resolve()
        if not root.is_dir():
            raise ConfigError(f"project folder not found: {root}")
        return cls(root)

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def cache_dir(self) -> Path:
        return self.state / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.state / "runs"

    @property
    def sweeps_dir(self) -> Path:
        return self.state / "sweeps"

    @property
    def weak_labels_dir(self) -> Path:
        return self.root / "weak_labels"

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    def tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI` if set, else a SQLite store in the state folder."""
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return f"sqlite:///{self.state / 'mlflow.db'}"

    def artifact_root(self) -> str:
        return (self.state / "mlartifacts").as_uri()

    def resolve_inside(self, path: str, key: str = "data.path") -> Path:
        """Resolve a user-given relative path against the root; refuse one that escapes it, naming
        the config `key` that gave it."""
        p = Path(path)
        if p.is_absolute():
            return p
        resolved = (self.root / p).resolve()
        if not resolved.is_relative_to(self.root):
            raise ConfigError(f"{key} '{path}' escapes the project folder")
        return resolved

"""What every task of one pipeline run shares, passed explicitly (small and serialisable)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from w2s.cache import ArtifactCache
from w2s.config import Config
from w2s.errors import ValidationFailed
from w2s.project import Project
from w2s.tracking import RunLog


@dataclass(frozen=True)
class RunContext:
    """The project, the run folder and the MLflow parent run of one pipeline run."""

    project_dir: str
    run_dir: str
    parent_run_id: str
    config: dict

    @property
    def project(self) -> Project:
        return Project(Path(self.project_dir))

    @property
    def cfg(self) -> Config:
        return Config.model_validate(self.config)

    @property
    def out(self) -> Path:
        return Path(self.run_dir)

    @property
    def cache(self) -> ArtifactCache:
        return ArtifactCache(self.project.cache_dir)


@contextmanager
def gate_artifact(run: RunLog, name: str) -> Iterator[None]:
    """Log a failed gate's report to the stage run before the failure stops the flow."""
    try:
        yield
    except ValidationFailed as exc:
        run.dict(exc.report, name)
        raise

"""What every task of one pipeline run shares, passed explicitly (small and serialisable)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from w2s.core.cache import ArtifactCache
from w2s.ops.tracking import RunLog
from w2s.pipeline.sequence import StepEnv
from w2s.project import Project
from w2s.tasks.gates import record_to


@dataclass(frozen=True)
class RunContext:
    """The project, the run folder and the MLflow parent run of one pipeline run."""

    project_dir: str
    run_dir: str
    parent_run_id: str

    @property
    def project(self) -> Project:
        return Project(Path(self.project_dir))

    @property
    def out(self) -> Path:
        return Path(self.run_dir)

    @property
    def cache(self) -> ArtifactCache:
        return ArtifactCache(self.project.cache_dir)

    def env(self, run: RunLog) -> StepEnv:
        """Where a step of this run works: step files in the run folder, label files published
        into the project's weak_labels/ and DVC-versioned, gate reports and their GX Data Docs
        logged to `run`."""
        return StepEnv(
            self.project,
            self.out,
            self.project.weak_labels_dir,
            self.cache,
            version_labels=True,
            record=record_to(run),
        )

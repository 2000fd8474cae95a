"""One configuration end to end, straight through the library (no orchestration, no tracking).

Sweeps run each grid point through this; the Prefect flow runs the same sequence with each step
in a task, with MLflow, DVC versioning and registration around them.
"""

from __future__ import annotations

from pathlib import Path

from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.ops import activity
from w2s.pipeline.sequence import LibrarySteps, Outcome, run_sequence
from w2s.project import Project


def run_config(cfg: Config, project: Project, out_dir: Path, cache: ArtifactCache) -> Outcome:
    """Run the whole sequence for `cfg`; step files and label files go to `out_dir`. Holds the
    project's activity lock shared, so `w2s gc` never collects under the run."""
    with activity.working(project):
        return run_sequence(LibrarySteps(project, out_dir, out_dir, cache), cfg)

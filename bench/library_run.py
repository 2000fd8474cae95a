"""The pipeline's steps called straight from the library (no Prefect, MLflow, DVC or GX): the
baseline of the orchestration-overhead ratio. Prints the metrics as JSON.

    python -m bench.library_run PROJECT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: str) -> None:
    from w2s.config import load_config
    from w2s.core.cache import ArtifactCache
    from w2s.pipeline.sequence import run_steps
    from w2s.project import Project

    project = Project(Path(root).resolve())
    cfg = load_config(project.params_file, [])
    result = run_steps(cfg, project, project.runs_dir / "library", ArtifactCache(project.cache_dir))
    print(json.dumps({"metrics": result.metrics}))


if __name__ == "__main__":
    main(sys.argv[1])

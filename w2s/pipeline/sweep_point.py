"""One point of a sweep through the library: run its configuration, keep its per-row test
correctness beside it (what the report's bootstrap resamples), and return its row (grid values,
seed, metrics). The sweep flow's task adds only MLflow logging around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w2s.analysis.aggregate import POINT_KEY
from w2s.analysis.sweep_report import CORRECT_FILE, point_dir
from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.io import atomic_path
from w2s.pipeline.evaluation import correctness_on_test
from w2s.pipeline.sequence import Outcome, run_steps
from w2s.project import Project


def run_point(
    cfg: Config, project: Project, sweep_dir: Path, index: int, point: dict[str, Any]
) -> tuple[dict[str, Any], Outcome]:
    """Run `cfg` as point `index` of the sweep in `sweep_dir`; return its row and its outcome."""
    folder = point_dir(sweep_dir, index)
    result = run_steps(cfg, project, folder, ArtifactCache(project.cache_dir))
    models = {"weak": result.weak, "w2s": result.student, "ceiling": result.ceiling}
    with atomic_path(folder / CORRECT_FILE) as tmp:
        correctness_on_test(result.splits, models).to_parquet(tmp, index=False)
    row = {
        **point,
        POINT_KEY: index,
        "seed": cfg.seed,
        **result.metrics,
        # weak-model selection's hindsight regret (the flow logs it on its select stage)
        **(result.selection.metrics() if result.selection is not None else {}),
        "reused": result.reused(),
    }
    return row, result

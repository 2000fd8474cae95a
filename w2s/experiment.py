"""One configuration end to end, straight through the library (no orchestration, no tracking).

Sweeps run each grid point through this; the pipeline flow runs the same steps as separate
Prefect tasks with MLflow, DVC and registration around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2s import steps
from w2s.bootstrap import bootstrap_labels
from w2s.cache import ArtifactCache
from w2s.config import Config
from w2s.project import Project
from w2s.refine.run import REFINED_METHODS, refine_supervisor
from w2s.refs import ModelRef
from w2s.selection import select_weak, with_weak
from w2s.strong import train_strong


@dataclass(frozen=True)
class ExperimentResult:
    """Metrics of one configuration and the cache entries that produced them."""

    metrics: dict[str, float | None]
    weak: ModelRef
    student: ModelRef
    ceiling: ModelRef
    labels: dict[str, Any]
    label_names: list[str]
    selection: dict[str, Any] | None = None
    refined: ModelRef | None = None


def run_experiment(cfg: Config, project: Project, out_dir: Path, cache: ArtifactCache) -> ExperimentResult:
    """ingest -> validate -> split -> [select weak] -> weak -> weak labels -> [bootstrap | refine]
    -> student, ceiling -> evaluate."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = steps.ingest(cfg, project, out_dir)
    steps.validate_table(table, cfg)
    splits, _ = steps.make_splits(table, cfg, out_dir)
    selection = None
    if cfg.selection.candidates:
        chosen, candidates = select_weak(splits, table, cfg, cache, out_dir)
        cfg = with_weak(cfg, chosen.name)
        selection = {"chosen": chosen.name, "candidates": [c.row() for c in candidates]}
    weak = steps.train_weak(splits, cfg, cache)
    labels, _ = steps.make_weak_labels(splits, weak, table, out_dir / "weak_labels.parquet")
    refined = None
    if cfg.method == "bootstrap":
        labels = bootstrap_labels(splits, cfg, cache, table, labels, out_dir)[-1][1]
    elif cfg.method in REFINED_METHODS:
        refined = refine_supervisor(splits, weak, cfg, cache)
        labels, _ = steps.make_weak_labels(splits, refined, table, out_dir / "refined_labels.parquet")
    student = train_strong(splits, cfg, cache, "w2s", labels["path"], labels["md5"])
    ceiling = train_strong(splits, cfg, cache, "ceiling")
    metrics = steps.evaluate(splits, weak, student, ceiling, refined)
    return ExperimentResult(metrics, weak, student, ceiling, labels, splits.label_names, selection, refined)

"""Tasks: train the weak supervisor; publish its weak labels (GX gate, DVC add + push)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s.config import Config
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.ops import datasets, tracking
from w2s.pipeline import steps


@task(name="weak-supervisor", cache_policy=NO_CACHE, **RETRY)
def train_weak(ctx: RunContext, cfg: Config, splits: SplitsRef) -> tuple[ModelRef, str]:
    """Train (or reuse, by content hash) the weak model; return it and its MLflow run id."""
    with tracking.stage_run(ctx.parent_run_id, "weak") as run:
        ref = ctx.steps(run).weak(cfg, splits)
        run.params({"weak": cfg.weak.model_dump(mode="json")})
        run.tags({"cache_key": ref.key, "reused": ref.reused})
        weak_test = steps.predictions(ref, "test")
        run.metrics({"train_seconds": ref.info.get("seconds"), "n_predictions": len(weak_test)})
    get_run_logger().info("weak model %s %s", ref.key[:12], "reused from cache" if ref.reused else "trained")
    return ref, run.run_id


@task(name="weak-labels", cache_policy=NO_CACHE, **RETRY)
def weak_labels(ctx: RunContext, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef) -> LabelsRef:
    """Publish the weak-label dataset: gated by GX before it is written, then `dvc add` + push."""
    project = ctx.project
    with tracking.stage_run(ctx.parent_run_id, "weak-labels") as run:
        labels = ctx.steps(run).weak_labels(cfg, splits, table, weak)
        run.tags({"weak_labels_md5": labels.md5})
        run.artifact(Path(labels.path).with_suffix(".json"))
        record = [datasets.label_file(project, labels, "weak-labels", "training")]
        datasets.log_inputs(record, run.run_id, ctx.parent_run_id)
    get_run_logger().info(
        "weak labels %s (md5 %s)%s",
        Path(labels.path).relative_to(project.root),
        labels.md5[:12],
        " pushed to the DVC remote" if labels.dvc else "",
    )
    return labels

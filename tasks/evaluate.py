"""Tasks: evaluate on the test split, write metrics.json and the DVC plots, register the student
in MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from tasks.serialise import promotion_serialised
from w2s.analysis.dvc_views import METRICS_FILE, curves, write_run_views
from w2s.config import Config
from w2s.core.refs import ModelRef, SplitsRef
from w2s.io import write_json
from w2s.methods.base import Supervision
from w2s.ops import datasets, registry, tracking


@task(name="evaluate", cache_policy=NO_CACHE, **RETRY)
def evaluate(
    ctx: RunContext,
    cfg: Config,
    splits: SplitsRef,
    weak: ModelRef,
    student: ModelRef,
    ceiling: ModelRef,
    budget: ModelRef,
    supervision: Supervision,
) -> dict:
    """Metrics under the contract's names, in the run folder, at the repo root and in MLflow."""
    with tracking.stage_run(ctx.parent_run_id, "evaluate") as run:
        metrics = ctx.steps(run).evaluate(cfg, splits, weak, student, ceiling, budget, supervision)
        run.metrics(metrics)
    tracking.RunLog(ctx.parent_run_id).metrics(metrics)
    write_json(ctx.out / METRICS_FILE, metrics)  # the run folder's own record
    write_run_views(ctx.project.root, metrics, curves(w2s=student, ceiling=ceiling, budget=budget))
    return metrics


@task(name="register", cache_policy=NO_CACHE, **RETRY)
def register(
    ctx: RunContext,
    cfg: Config,
    student: ModelRef,
    splits: SplitsRef,
    metrics: dict[str, float | None],
    tags: dict,
) -> dict:
    """Register the student (or find the version that already holds it) under the model's
    promotion lock, so no gate, rollback or gc sees the registry half-way through."""
    reg = cfg.registry
    with tracking.stage_run(ctx.parent_run_id, "register") as run:
        run.tags({**tags, registry.STUDENT_KEY_TAG: student.key})
        done = registry.register_student(
            promotion_serialised(ctx.project, reg.model_name),
            run.run_id,
            ctx.parent_run_id,
            Path(student.dir) / "model",
            splits.label_names,
            student.key,
            reg.model_name,
            reg.alias,
            cfg.promotion.champion_alias,
            tags,
            metrics,
            (datasets.SPLITS_NAME, splits.md5),
        )
        if done.reused:
            run.tags({"reused_version": done.version})
    what = "student unchanged: is again" if done.reused else "registered as"
    get_run_logger().info("%s/%s %s @%s", done.name, done.version, what, done.alias)
    return done.as_dict()

"""Tasks: evaluate on the test split, write metrics.json and the DVC plots, register the student
in MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s.config import Config
from w2s.core.refs import ModelRef, SplitsRef
from w2s.io import write_json
from w2s.methods.base import Supervision
from w2s.ops import datasets, registry, tracking
from w2s.pipeline.dvc_views import METRICS_FILE, curves, write_run_views


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
    """Log the student as a text-in pyfunc, register a version with lineage tags, alias it.

    A student whose cache key a version already carries is that version (the same weights):
    nothing new is logged or registered, the alias moves to it, and the version is tagged with
    this run. That also makes a retried registration idempotent."""
    reg = cfg.registry
    tags = {**tags, registry.STUDENT_KEY_TAG: student.key}
    with tracking.stage_run(ctx.parent_run_id, "register") as run:
        run.tags(tags)
        existing = registry.version_of_student(reg.model_name, student.key)
        if existing is None:
            version = registry.log_and_register(
                run.run_id,
                Path(student.dir) / "model",
                splits.label_names,
                reg.model_name,
                reg.alias,
                tags,
                metrics,
                (datasets.SPLITS_NAME, splits.md5),
            )
            get_run_logger().info("registered %s version %s as @%s", reg.model_name, version, reg.alias)
        else:
            version = existing
            registry.reuse_version(reg.model_name, version, reg.alias, ctx.parent_run_id)
            run.tags({"reused_version": version})
            get_run_logger().info(
                "student unchanged (cache key %s): %s version %s is @%s again; nothing new registered",
                student.key[:12],
                reg.model_name,
                version,
                reg.alias,
            )
    return {
        "name": reg.model_name,
        "version": version,
        "alias": reg.alias,
        "uri": f"models:/{reg.model_name}@{reg.alias}",
        "reused": existing is not None,
    }

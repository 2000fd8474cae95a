"""Tasks: evaluate on the test split, write metrics.json, register the student in MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s import registry, steps, tracking
from w2s.io import write_json
from w2s.refs import ModelRef, SplitsRef


@task(name="evaluate", cache_policy=NO_CACHE, **RETRY)
def evaluate(ctx: RunContext, splits: SplitsRef, weak: ModelRef, student: ModelRef,
             ceiling: ModelRef, refined: ModelRef | None = None) -> dict:
    """Metrics under the contract's names, in the run folder, at the repo root and in MLflow."""
    metrics = steps.evaluate(splits, weak, student, ceiling, refined)
    with tracking.stage_run(ctx.parent_run_id, "evaluate") as run:
        run.metrics(metrics)
    tracking.RunLog(ctx.parent_run_id).metrics(metrics)
    write_json(ctx.out / "metrics.json", metrics)
    write_json(ctx.project.root / "metrics.json", metrics)
    return metrics


@task(name="register", cache_policy=NO_CACHE, **RETRY)
def register(ctx: RunContext, student: ModelRef, label_names: list[str], tags: dict) -> dict:
    """Log the student as a text-in pyfunc, register a version with lineage tags, alias it."""
    cfg = ctx.cfg.registry
    with tracking.stage_run(ctx.parent_run_id, "register") as run:
        run.tags(tags)
        version = registry.log_and_register(run.run_id, Path(student.dir) / "model", label_names,
                                            cfg.model_name, cfg.alias, tags)
    get_run_logger().info("registered %s version %s as @%s", cfg.model_name, version, cfg.alias)
    return {"name": cfg.model_name, "version": version, "alias": cfg.alias,
            "uri": f"models:/{cfg.model_name}@{cfg.alias}"}

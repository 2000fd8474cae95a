"""The task that registers the pipeline's student in the MLflow registry (or finds the version
that already holds it), under the model's promotion lock."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from w2s.config import Config
from w2s.core.refs import ModelRef, SplitsRef
from w2s.ops import datasets, model_registry, tracking
from w2s.tasks.context import RunContext
from w2s.tasks.promotion_lock import promotion_serialised
from w2s.tasks.retry import RETRY


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
        run.tags({**tags, model_registry.STUDENT_KEY_TAG: student.key})
        done = model_registry.register_student(
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

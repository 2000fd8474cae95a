"""The one task that runs a pipeline step (`w2s.pipeline.sequence.STEPS`) in the flow: the step in
its own nested MLflow run, what the step's record logs about its output, its project views, a
line for the log and its tables as Prefect artifacts."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from w2s.config import Config
from w2s.ops import tracking
from w2s.pipeline import sequence
from w2s.pipeline.step_records import Record
from w2s.tasks.context import RunContext
from w2s.tasks.retry import RETRY


@task(cache_policy=NO_CACHE, **RETRY)
def run_step(ctx: RunContext, name: str, cfg: Config, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Run step `name` on the outputs of its inputs; return its output and its lineage tags."""
    step = sequence.step(name)
    record = None
    with tracking.stage_run(ctx.parent_run_id, step.task_title) as run:
        out = step.run(ctx.env(run), cfg, *inputs.values())
        if step.record is not None:
            record = Record(run, ctx.parent_run_id, ctx.project, cfg, inputs, ctx.out, ctx.cache)
            step.record(record, out)
    if step.views is not None:
        step.views(ctx.project, out, inputs)
    if record is None:
        return out, {}
    for key, rows, description in record.tables:
        create_table_artifact(rows, key=key, description=description)
    if record.message:
        get_run_logger().info(record.message)
    return out, record.tags

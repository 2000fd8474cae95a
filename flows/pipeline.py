"""The weak-to-strong pipeline as one Prefect flow: the steps of `w2s.pipeline.sequence.STEPS`,
each a task with its own nested MLflow run (`w2s.tasks.step.run_step`), then registration.

Tasks exchange paths, hashes and small dataclasses only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, runtime

from w2s.config import Config
from w2s.core.config import stable_hash
from w2s.core.refs import LabelsRef
from w2s.ops import activity
from w2s.pipeline.sequence import Step, StepCall, walk
from w2s.pipeline.weak_selection import Selection
from w2s.project import Project
from w2s.tasks import register, tracking
from w2s.tasks.context import RunContext
from w2s.tasks.step import run_step


def _task_step(ctx: RunContext, tags: dict[str, Any]) -> StepCall:
    """Each step as a Prefect task named after it; its lineage tags join the run's."""

    def call(step: Step, cfg: Config, inputs: dict[str, Any]) -> Any:
        out, found = run_step.with_options(name=step.task_title)(ctx, step.name, cfg, inputs)
        tags.update(found)
        return out

    return call


def new_run_name(config: dict) -> str:
    """Sortable, unique-enough run folder name: UTC time plus a short config hash."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return f"{stamp}-{stable_hash(config)[:6]}"


@dataclass(frozen=True)
class PipelineResult:
    """What one pipeline run produced and where it is recorded."""

    run_name: str
    run_dir: str
    mlflow_run_id: str
    metrics: dict[str, float | None]
    tags: dict[str, Any]
    model: dict[str, Any] | None  # the registered version (name, version, alias, uri)
    weak_labels: LabelsRef
    student_labels: LabelsRef
    label_names: list[str]
    counts: dict[str, int]
    reused: dict[str, bool]  # weak, w2s, ceiling, budget: taken from the cache rather than trained
    early_stopping: str
    method: str
    selection: Selection | None = field(default=None)


@flow(name="w2s-pipeline", log_prints=True, validate_parameters=False)
def pipeline(config: dict[str, Any], project_dir: str) -> PipelineResult:
    """Run the whole pipeline for a validated config; return metrics, lineage and the model."""
    cfg = Config.model_validate(config)
    run_name = new_run_name(config)
    project = Project(Path(project_dir))
    run_dir = project.runs_dir / run_name
    with activity.working(project):  # `w2s gc` waits until the run is over
        parent_id, tags = tracking.start(project_dir, config, run_name, runtime.flow_run.id)
        run_dir.mkdir(parents=True, exist_ok=True)  # after tracking is reachable: a dead server leaves nothing
        ctx = RunContext(project_dir, str(run_dir), parent_id)
        ok = False
        try:
            out = walk(_task_step(ctx, tags), cfg)
            model = None
            if cfg.registry.enabled:
                model = register.register(ctx, out.cfg, out.student, out.splits, out.metrics, tags)
            ok = True
        finally:
            tracking.finish(parent_id, tags, ok)
    return PipelineResult(
        run_name=run_name,
        run_dir=str(run_dir),
        mlflow_run_id=parent_id,
        metrics=out.metrics,
        tags=tags,
        model=model,
        weak_labels=out.weak_labels,
        student_labels=out.supervision.labels,
        label_names=out.splits.label_names,
        counts=out.splits.counts,
        reused=out.reused(),
        early_stopping=out.cfg.strong.early_stopping,
        method=out.cfg.method,
        selection=out.selection,
    )

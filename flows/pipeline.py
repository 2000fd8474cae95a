"""The weak-to-strong pipeline as one Prefect flow: the library's one sequence of steps
(`w2s.pipeline.sequence`), each step a task with its own nested MLflow run, then registration.

Tasks exchange paths, hashes and small dataclasses only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, runtime

from tasks import data, evaluate, methods, strong, tracking, weak
from tasks.context import RunContext
from w2s.config import Config
from w2s.core.config import stable_hash
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.methods.base import Supervision
from w2s.ops import activity
from w2s.pipeline.sequence import run_sequence
from w2s.pipeline.weak_selection import Selection
from w2s.project import Project


def new_run_name(config: dict) -> str:
    """Sortable, unique-enough run folder name: UTC time plus a short config hash."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return f"{stamp}-{stable_hash(config)[:6]}"


@dataclass
class FlowSteps:
    """The sequence's steps as Prefect tasks; collects the lineage tags as the steps report them."""

    ctx: RunContext
    tags: dict[str, Any]
    weak_run_id: str = ""

    def ingest(self, cfg: Config) -> TableRef:
        table = data.ingest(self.ctx, cfg)
        self.tags.update(data_md5=table.data_md5, **table.source["dvc"])
        return table

    def validate(self, cfg: Config, table: TableRef) -> dict:
        return data.validate(self.ctx, cfg, table)

    def split(self, cfg: Config, table: TableRef) -> SplitsRef:
        return data.split(self.ctx, cfg, table)

    def select(self, cfg: Config, splits: SplitsRef, table: TableRef) -> Selection | None:
        return methods.select_weak(self.ctx, cfg, splits, table) if cfg.selection.candidates else None

    def weak(self, cfg: Config, splits: SplitsRef) -> ModelRef:
        ref, self.weak_run_id = weak.train_weak(self.ctx, cfg, splits)
        return ref

    def weak_labels(self, cfg: Config, splits: SplitsRef, table: TableRef, weak_ref: ModelRef) -> LabelsRef:
        labels = weak.weak_labels(self.ctx, cfg, splits, table, weak_ref)
        root = Path(self.ctx.project_dir).resolve()
        self.tags.update(
            weak_labels_md5=labels.md5,
            weak_model_run_id=self.weak_run_id,
            weak_labels_path=Path(labels.path).resolve().relative_to(root).as_posix(),
            weak_labels_in_dvc="yes" if labels.dvc else "no (not a DVC repository)",
        )
        return labels

    def supervise(
        self, cfg: Config, splits: SplitsRef, table: TableRef, weak_ref: ModelRef, labels: LabelsRef
    ) -> Supervision:
        sup = methods.supervise(self.ctx, cfg, splits, table, weak_ref, labels)
        self.tags["student_labels_md5"] = sup.labels.md5
        return sup

    def student(self, cfg: Config, splits: SplitsRef, supervision: Supervision) -> ModelRef:
        ref = strong.train_student(self.ctx, cfg, splits, supervision)
        lora = cfg.strong.lora
        self.tags.update(
            strong_base_model=cfg.strong.model,
            strong_adapter=f"lora r={lora.r} alpha={lora.alpha:g}" if lora.r else "none (every weight trained)",
            strong_trainable_params=ref.info.get("trainable_params"),
        )
        return ref

    def ceiling(self, cfg: Config, splits: SplitsRef) -> ModelRef:
        return strong.train_ceiling(self.ctx, cfg, splits)

    def budget(self, cfg: Config, splits: SplitsRef) -> ModelRef:
        return strong.train_budget(self.ctx, cfg, splits)

    def evaluate(
        self,
        cfg: Config,
        splits: SplitsRef,
        weak_ref: ModelRef,
        student: ModelRef,
        ceiling: ModelRef,
        budget: ModelRef,
        supervision: Supervision,
    ) -> dict:
        return evaluate.evaluate(self.ctx, cfg, splits, weak_ref, student, ceiling, budget, supervision)


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
            out = run_sequence(FlowSteps(ctx, tags), cfg)
            model = None
            if cfg.registry.enabled:
                model = evaluate.register(ctx, out.cfg, out.student, out.splits, out.metrics, tags)
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

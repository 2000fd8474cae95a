"""The pipeline's one sequence of steps, and the library's implementation of them.

ingest -> validate -> split -> select (weak-model selection, when candidates are configured) ->
weak -> weak_labels -> supervise (the method's labels) -> student, ceiling, budget -> evaluate.

`budget` is the strong model trained on the weak model's own ground-truth budget (weak_train):
the baseline that says whether weak supervision beat simply training the strong model on the
labels the weak model saw.

`run_sequence` is the only place that order is written. The Prefect flow runs it with steps that
wrap each library step in a task (tracking, artifacts); the library runner runs it with
`LibrarySteps` directly; each DVC stage runs one `LibrarySteps` step, and a test keeps
`dvc.yaml`'s stages equal to `SEQUENCE`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.core.stats import gate_pgrs
from w2s.errors import ValidationFailed
from w2s.methods import get as get_method
from w2s.methods.base import Supervision
from w2s.ops.validation import GateFailed, GateReport
from w2s.pipeline import steps
from w2s.pipeline.publish import Publisher, Recorder, record_beside
from w2s.pipeline.strong import BudgetRun, CeilingRun, StudentRun, train_strong
from w2s.pipeline.supervise import PipelineEnv, supervise
from w2s.pipeline.weak_selection import Selection, select_weak
from w2s.project import Project

SEQUENCE = (
    "ingest",
    "validate",
    "split",
    "select",
    "weak",
    "weak_labels",
    "supervise",
    "student",
    "ceiling",
    "budget",
    "evaluate",
)


class Steps(Protocol):
    """One implementation of every step of `SEQUENCE`."""

    def ingest(self, cfg: Config) -> TableRef: ...
    def validate(self, cfg: Config, table: TableRef) -> Any: ...
    def split(self, cfg: Config, table: TableRef) -> SplitsRef: ...
    def select(self, cfg: Config, splits: SplitsRef, table: TableRef) -> Selection | None: ...
    def weak(self, cfg: Config, splits: SplitsRef) -> ModelRef: ...
    def weak_labels(self, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef) -> LabelsRef: ...
    def supervise(
        self, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef, labels: LabelsRef
    ) -> Supervision: ...
    def student(self, cfg: Config, splits: SplitsRef, supervision: Supervision) -> ModelRef: ...
    def ceiling(self, cfg: Config, splits: SplitsRef) -> ModelRef: ...
    def budget(self, cfg: Config, splits: SplitsRef) -> ModelRef: ...
    def evaluate(
        self,
        cfg: Config,
        splits: SplitsRef,
        weak: ModelRef,
        student: ModelRef,
        ceiling: ModelRef,
        budget: ModelRef,
        supervision: Supervision,
    ) -> dict[str, float | None]: ...


@dataclass(frozen=True)
class Outcome:
    """Everything one pass through the sequence produced (references, not objects)."""

    cfg: Config  # after weak-model selection
    table: TableRef
    splits: SplitsRef
    selection: Selection | None
    weak: ModelRef
    weak_labels: LabelsRef
    supervision: Supervision
    student: ModelRef
    ceiling: ModelRef
    budget: ModelRef
    metrics: dict[str, float | None]

    def reused(self) -> dict[str, bool]:
        """Which models came from the cache rather than being trained."""
        models = {"weak": self.weak, "w2s": self.student, "ceiling": self.ceiling, "budget": self.budget}
        return {name: ref.reused for name, ref in models.items()}


def run_sequence(s: Steps, cfg: Config) -> Outcome:
    """Run every step of `SEQUENCE`, in order, through `s`."""
    table = s.ingest(cfg)
    s.validate(cfg, table)
    splits = s.split(cfg, table)
    selection = s.select(cfg, splits, table)
    if selection is not None:
        cfg = selection.apply(cfg)
    weak = s.weak(cfg, splits)
    labels = s.weak_labels(cfg, splits, table, weak)
    supervision = s.supervise(cfg, splits, table, weak, labels)
    student = s.student(cfg, splits, supervision)
    ceiling = s.ceiling(cfg, splits)
    budget = s.budget(cfg, splits)
    metrics = s.evaluate(cfg, splits, weak, student, ceiling, budget, supervision)
    return Outcome(cfg, table, splits, selection, weak, labels, supervision, student, ceiling, budget, metrics)


@dataclass
class LibrarySteps:
    """The steps as plain library calls. `out_dir` receives the step files (table, splits, the
    candidates of weak-model selection), `labels_dir` the published label files; with
    `version_labels` they are DVC-versioned in the project as they are published."""

    project: Project
    out_dir: Path
    labels_dir: Path
    cache: ArtifactCache
    version_labels: bool = False
    # receives every gate report (passed or failed); default: JSON files beside the step's files,
    # with the gates' GX Data Docs when `data_docs`
    record: Recorder | None = field(default=None)
    data_docs: bool = False

    def _publisher(self, splits: SplitsRef, table: TableRef) -> Publisher:
        self.labels_dir.mkdir(parents=True, exist_ok=True)
        return Publisher(
            splits,
            table,
            self.labels_dir,
            self.record or record_beside(self.labels_dir, self.data_docs),
            self.project if self.version_labels else None,
        )

    def _gate(self, name: str, run: Callable[[], tuple[Any, GateReport]]) -> Any:
        """Run a gated step; its report is recorded whether it passed or not."""
        record = self.record or record_beside(self.out_dir, self.data_docs)
        try:
            result, report = run()
        except ValidationFailed as exc:
            record(name, exc.gate if isinstance(exc, GateFailed) else GateReport.from_dict(exc.report))
            raise
        record(name, report)
        return result

    def ingest(self, cfg: Config) -> TableRef:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return steps.ingest(cfg, self.project, self.out_dir)

    def validate(self, cfg: Config, table: TableRef) -> GateReport:
        def run() -> tuple[GateReport, GateReport]:
            report = steps.validate_table(table, cfg)
            return report, report

        return self._gate("gate_raw_table.json", run)

    def split(self, cfg: Config, table: TableRef) -> SplitsRef:
        return self._gate("gate_split_overlap.json", lambda: steps.make_splits(table, cfg, self.out_dir))

    def select(self, cfg: Config, splits: SplitsRef, table: TableRef) -> Selection | None:
        if not cfg.selection.candidates:
            return None
        return select_weak(splits, table, cfg, self.cache, self.out_dir)

    def weak(self, cfg: Config, splits: SplitsRef) -> ModelRef:
        return steps.train_weak(splits, cfg, self.cache)

    def weak_labels(self, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef) -> LabelsRef:
        return self._publisher(splits, table)(weak, weak.key[:16], gate="weak_labels")

    def supervise(
        self, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef, labels: LabelsRef
    ) -> Supervision:
        env = PipelineEnv(cfg, splits, weak, labels, self.cache, self._publisher(splits, table))
        return supervise(env)

    def student(self, cfg: Config, splits: SplitsRef, supervision: Supervision) -> ModelRef:
        return train_strong(splits, StudentRun.with_method(cfg, supervision.labels), self.cache)

    def ceiling(self, cfg: Config, splits: SplitsRef) -> ModelRef:
        return train_strong(splits, CeilingRun(cfg), self.cache)

    def budget(self, cfg: Config, splits: SplitsRef) -> ModelRef:
        return train_strong(splits, BudgetRun(cfg), self.cache)

    def evaluate(
        self,
        cfg: Config,
        splits: SplitsRef,
        weak: ModelRef,
        student: ModelRef,
        ceiling: ModelRef,
        budget: ModelRef,
        supervision: Supervision,
    ) -> dict[str, Any]:
        metrics = steps.evaluate(
            splits, weak, student, ceiling, budget, supervision.labels, supervision.refined, supervision.chain
        )
        metrics.update(get_method(cfg.method)(cfg).metrics(supervision, student.info))
        return gate_pgrs(metrics, cfg.eval.min_gap)

"""The pipeline's steps, declared once: `STEPS` is the table from which the Prefect flow, the
library runner (`run_steps`) and the DVC stages (`w2s.pipeline.dvc_stages`, and the generated
`dvc.yaml`) are all derived.

ingest -> validate -> split -> select (weak-model selection, when candidates are configured) ->
weak -> weak_labels -> supervise (the method's labels) -> student, ceiling, budget -> evaluate.

`budget` is the strong model trained on the weak model's own ground-truth budget (weak_train):
the baseline that says whether weak supervision beat simply training the strong model on the
labels the weak model saw.

A step names the earlier steps whose outputs it takes (`inputs`), the config sections it reads
(`params`, what `dvc.yaml` lists; `method` stands for every method's section too), the code
whose change reruns it in this repository (`code`), what the flow logs about its output
(`record`, in `w2s.pipeline.step_records`) and its title (the MLflow stage run and Prefect task).
Adding a step is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.core.stats import gate_pgrs
from w2s.errors import ValidationFailed
from w2s.methods import get as get_method
from w2s.methods.base import Supervision
from w2s.ops import activity
from w2s.ops.validation import GateFailed, GateReport
from w2s.pipeline import data_steps, evaluation, weak_model
from w2s.pipeline import step_records as records
from w2s.pipeline.publish import Publisher, Recorder, record_beside
from w2s.pipeline.strong import BudgetRun, CeilingRun, StudentRun, train_strong
from w2s.pipeline.supervise import PipelineEnv, supervise
from w2s.pipeline.weak_selection import Selection, select_weak
from w2s.project import Project


@dataclass
class StepEnv:
    """Where a step works: `out_dir` receives its files (table, splits, a selection's
    candidates), `labels_dir` the label files it publishes (DVC-versioned in the project when
    `version_labels`), `record` every gate report (default: JSON beside the step's files, with
    GX Data Docs when `data_docs`)."""

    project: Project
    out_dir: Path
    labels_dir: Path
    cache: ArtifactCache
    version_labels: bool = False
    record: Recorder | None = field(default=None)
    data_docs: bool = False

    def publisher(self, splits: SplitsRef, table: TableRef) -> Publisher:
        self.labels_dir.mkdir(parents=True, exist_ok=True)
        return Publisher(
            splits,
            table,
            self.labels_dir,
            self.record or record_beside(self.labels_dir, self.data_docs),
            self.project if self.version_labels else None,
        )

    def gate(self, name: str, run: Callable[[], tuple[Any, GateReport]]) -> Any:
        """Run a gated step; its report is recorded whether it passed or not."""
        record = self.record or record_beside(self.out_dir, self.data_docs)
        try:
            result, report = run()
        except ValidationFailed as exc:
            record(name, exc.gate if isinstance(exc, GateFailed) else GateReport.from_dict(exc.report))
            raise
        record(name, report)
        return result


# -- what each step runs: (env, cfg, *outputs of its inputs) -> its output


def _ingest(env: StepEnv, cfg: Config) -> TableRef:
    env.out_dir.mkdir(parents=True, exist_ok=True)
    return data_steps.ingest(cfg, env.project, env.out_dir)


def _validate(env: StepEnv, cfg: Config, table: TableRef) -> GateReport:
    def run() -> tuple[GateReport, GateReport]:
        report = data_steps.validate_table(table, cfg)
        return report, report

    return env.gate("gate_raw_table.json", run)


def _split(env: StepEnv, cfg: Config, table: TableRef) -> SplitsRef:
    return env.gate("gate_split_overlap.json", lambda: data_steps.make_splits(table, cfg, env.out_dir))


def _select(env: StepEnv, cfg: Config, splits: SplitsRef, table: TableRef) -> Selection:
    return select_weak(splits, table, cfg, env.cache, env.out_dir)


def _weak(env: StepEnv, cfg: Config, splits: SplitsRef) -> ModelRef:
    return weak_model.train_weak(splits, cfg, env.cache)


def _weak_labels(env: StepEnv, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef) -> LabelsRef:
    return env.publisher(splits, table)(weak, weak.key[:16], gate="weak_labels")


def _supervise(
    env: StepEnv, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef, labels: LabelsRef
) -> Supervision:
    return supervise(PipelineEnv(cfg, splits, weak, labels, env.cache, env.publisher(splits, table)))


def _student(env: StepEnv, cfg: Config, splits: SplitsRef, supervision: Supervision) -> ModelRef:
    return train_strong(splits, StudentRun.with_method(cfg, supervision.labels), env.cache)


def _ceiling(env: StepEnv, cfg: Config, splits: SplitsRef) -> ModelRef:
    return train_strong(splits, CeilingRun(cfg), env.cache)


def _budget(env: StepEnv, cfg: Config, splits: SplitsRef) -> ModelRef:
    return train_strong(splits, BudgetRun(cfg), env.cache)


def _evaluate(
    env: StepEnv,
    cfg: Config,
    splits: SplitsRef,
    weak: ModelRef,
    student: ModelRef,
    ceiling: ModelRef,
    budget: ModelRef,
    supervision: Supervision,
) -> dict[str, Any]:
    metrics = evaluation.evaluate(
        splits, weak, student, ceiling, budget, supervision.labels, supervision.refined, supervision.chain
    )
    metrics.update(get_method(cfg.method)(cfg).metrics(supervision, student.info))
    return gate_pgrs(metrics, cfg.eval.min_gap)


@dataclass(frozen=True)
class Step:
    """One step of the pipeline (see the module docstring)."""

    name: str
    run: Callable[..., Any]
    inputs: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    title: str = ""  # the MLflow stage run and Prefect task; default: the name
    record: Callable[..., None] | None = None  # what the flow logs (w2s.pipeline.step_records)
    # extra DVC dependencies besides the inputs' outputs and the code (e.g. the raw data folder)
    data: tuple[str, ...] = ()
    # its output changes the config of the steps after it (`output.apply(cfg)`; None: no change)
    updates_config: bool = False
    # what the flow and `dvc repro` (not the library runner) write into the project from its
    # output and its inputs (by name)
    views: Callable[[Project, Any, dict[str, Any]], None] | None = None
    # whether it runs for this config; a step that does not has the output None
    when: Callable[[Config], bool] | None = None

    def runs(self, cfg: Config) -> bool:
        return self.when is None or self.when(cfg)

    @property
    def task_title(self) -> str:
        return self.title or self.name


STEPS: tuple[Step, ...] = (
    Step("ingest", _ingest, (), ("data",), ("w2s/core/data",), record=records.ingest, data=("data",)),
    Step("validate", _validate, ("ingest",), ("data",), ("w2s/ops/validation.py",), "validate-data", records.validate),
    Step("split", _split, ("ingest",), ("seed", "split"), ("w2s/core/data/split.py",), record=records.split),
    Step(
        "select",
        _select,
        ("split", "ingest"),
        ("seed", "selection", "strong"),
        ("w2s/pipeline/weak_selection.py",),
        "select-weak",
        records.select,
        updates_config=True,
        when=lambda cfg: bool(cfg.selection.candidates),
    ),
    Step("weak", _weak, ("split",), ("seed", "weak"), ("w2s/core/models",), record=records.weak),
    Step(
        "weak_labels",
        _weak_labels,
        ("split", "ingest", "weak"),
        (),
        ("w2s/pipeline/publish.py", "w2s/pipeline/labels.py"),
        "weak-labels",
        records.weak_labels,
    ),
    Step(
        "supervise",
        _supervise,
        ("split", "ingest", "weak", "weak_labels"),
        ("seed", "method", "weak", "strong"),
        ("w2s/methods", "w2s/pipeline/supervise.py"),
        record=records.supervise,
    ),
    Step(
        "student",
        _student,
        ("split", "supervise"),
        ("seed", "method", "strong"),
        ("w2s/core/train.py", "w2s/core/losses.py", "w2s/pipeline/strong.py", "w2s/methods"),
        StudentRun.stage,
        records.student,
    ),
    Step(
        "ceiling",
        _ceiling,
        ("split",),
        ("seed", "strong"),
        ("w2s/core/train.py", "w2s/pipeline/strong.py"),
        CeilingRun.stage,
        records.trained("ceiling"),
    ),
    Step(
        "budget",
        _budget,
        ("split",),
        ("seed", "strong"),
        ("w2s/core/train.py", "w2s/pipeline/strong.py"),
        BudgetRun.stage,
        records.trained("budget"),
    ),
    Step(
        "evaluate",
        _evaluate,
        ("split", "weak", "student", "ceiling", "budget", "supervise"),
        ("method", "eval"),
        ("w2s/core/metrics.py", "w2s/core/metric_schema.py", "w2s/methods"),
        record=records.evaluate,
        views=records.evaluate_views,
    ),
)


def step(name: str, table: tuple[Step, ...] | None = None) -> Step:
    """The step called `name`."""
    found = {s.name: s for s in (table or STEPS)}
    if name not in found:
        raise KeyError(f"no pipeline step '{name}' (steps: {', '.join(found)})")
    return found[name]


@dataclass(frozen=True)
class Outcome:
    """Everything one pass through the steps produced (references, not objects), by step name,
    with the config as the steps after weak-model selection saw it."""

    cfg: Config
    outputs: dict[str, Any]

    @property
    def table(self) -> TableRef:
        return self.outputs["ingest"]

    @property
    def splits(self) -> SplitsRef:
        return self.outputs["split"]

    @property
    def selection(self) -> Selection | None:
        return self.outputs.get("select")

    @property
    def weak(self) -> ModelRef:
        return self.outputs["weak"]

    @property
    def weak_labels(self) -> LabelsRef:
        return self.outputs["weak_labels"]

    @property
    def supervision(self) -> Supervision:
        return self.outputs["supervise"]

    @property
    def student(self) -> ModelRef:
        return self.outputs["student"]

    @property
    def ceiling(self) -> ModelRef:
        return self.outputs["ceiling"]

    @property
    def budget(self) -> ModelRef:
        return self.outputs["budget"]

    @property
    def metrics(self) -> dict[str, float | None]:
        return self.outputs["evaluate"]

    def reused(self) -> dict[str, bool]:
        """Which models came from the cache rather than being trained."""
        models = {"weak": self.weak, "w2s": self.student, "ceiling": self.ceiling, "budget": self.budget}
        return {name: ref.reused for name, ref in models.items()}


StepCall = Callable[[Step, Config, dict[str, Any]], Any]


def walk(call: StepCall, cfg: Config, table: tuple[Step, ...] | None = None) -> Outcome:
    """Run every step of `table` (default `STEPS`) in order through `call(step, cfg, inputs)`,
    passing each step the outputs of its inputs (by name) and the config as selection left it;
    a step whose `when` says no is skipped, with the output None."""
    outputs: dict[str, Any] = {}
    for s in table or STEPS:
        out = call(s, cfg, {name: outputs[name] for name in s.inputs}) if s.runs(cfg) else None
        outputs[s.name] = out
        if s.updates_config and out is not None:
            cfg = out.apply(cfg)
    return Outcome(cfg, outputs)


def run_steps(
    cfg: Config, project: Project, out_dir: Path, cache: ArtifactCache, table: tuple[Step, ...] | None = None
) -> Outcome:
    """The library runner: every step, in order, as plain calls (no orchestration, no tracking);
    step files and label files go to `out_dir`. Holds the project's activity lock shared, so
    `w2s gc` never collects under the run. Sweeps run each grid point through this."""
    env = StepEnv(project, out_dir, out_dir, cache)
    with activity.working(project):
        return walk(lambda s, c, inputs: s.run(env, c, *inputs.values()), cfg, table)

"""What the orchestrated pipeline records about each step's output, declared beside the step in
`w2s.pipeline.sequence.STEPS`: params, metrics, tags and files on the step's MLflow run, dataset
inputs, the lineage tags the pipeline run and the registered version carry, a line for the log,
and tables worth publishing (the flow makes them Prefect artifacts). The library runner records
nothing; these run only where a tracking store is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.core.data.split import TRAINED_ROWS_FILE, trained_rows
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.methods.base import Supervision
from w2s.ops import datasets
from w2s.ops.lineage import data_version
from w2s.ops.tracking import RunLog
from w2s.ops.validation import GateReport
from w2s.project import Project


@dataclass
class Record:
    """One step's record: where it goes, and what the recording collects for the flow."""

    run: RunLog  # the step's own MLflow run
    parent_run_id: str  # the pipeline run
    project: Project
    cfg: Config
    inputs: dict[str, Any]  # the outputs of the step's inputs, by step name
    out_dir: Path  # the run folder
    cache: ArtifactCache
    tags: dict[str, Any] = field(default_factory=dict)  # lineage tags for the pipeline run and version
    message: str = ""  # one line for the flow's log
    tables: list[tuple[str, list[dict[str, Any]], str]] = field(default_factory=list)  # (key, rows, description)


def ingest(r: Record, ref: TableRef) -> None:
    dvc = data_version(r.cfg, r.project)
    r.run.params({"source": ref.source})
    r.run.metrics({**ref.stats, "num_classes": len(ref.label_names)})
    r.run.tags({"data_md5": ref.data_md5, **dvc})
    datasets.log_inputs([datasets.raw_data(r.project, ref, dvc)], r.run.run_id, r.parent_run_id)
    r.tags.update(data_md5=ref.data_md5, **dvc)
    r.message = f"ingested {ref.rows} rows, {len(ref.label_names)} classes (data md5 {ref.data_md5[:12]})"


def validate(r: Record, report: GateReport) -> None:
    r.run.metrics({"expectations_evaluated": report.evaluated})
    r.message = f"raw-data gate passed ({report.evaluated} expectations)"


def split(r: Record, ref: SplitsRef) -> None:
    from dataclasses import asdict

    r.run.metrics({f"n_{k}": v for k, v in ref.counts.items()})
    r.run.dict(asdict(ref), "splits.json")
    datasets.log_inputs([datasets.splits(r.project, ref)], r.run.run_id, r.parent_run_id)
    # on the pipeline run, where a later promotion gate looks for the rows this model saw
    RunLog(r.parent_run_id).table(trained_rows(pd.read_parquet(ref.path)), TRAINED_ROWS_FILE)
    r.message = f"splits {ref.counts}"


def select(r: Record, selection: Any) -> None:
    rows = selection.candidates
    r.run.dict(rows, "weak_selection.json")
    for row in rows:
        r.run.metrics({f"{row['candidate']}.{k}": row[k] for k in ("err_w_cv", "misfit", "predicted_strong_err")})
    r.run.metrics(selection.metrics())  # hindsight diagnostics: computed after the choice
    r.run.tags({"chosen_weak": selection.chosen})
    r.tables.append(("w2s-weak-selection", rows, f"weak-model selection: chose {selection.chosen}"))
    chosen = next(row for row in rows if row["candidate"] == selection.chosen)
    r.message = (
        f"weak-model selection chose {selection.chosen} (predicted strong error {chosen['predicted_strong_err']:.4f})"
    )


def weak(r: Record, ref: ModelRef) -> None:
    from w2s.pipeline.predictions import predictions

    r.run.params({"weak": r.cfg.weak.model_dump(mode="json")})
    r.run.tags({"cache_key": ref.key, "reused": ref.reused})
    r.run.metrics({"train_seconds": ref.info.get("seconds"), "n_predictions": len(predictions(ref, "test"))})
    r.tags["weak_model_run_id"] = r.run.run_id
    r.message = f"weak model {ref.key[:12]} {'reused from cache' if ref.reused else 'trained'}"


def weak_labels(r: Record, labels: LabelsRef) -> None:
    r.run.tags({"weak_labels_md5": labels.md5})
    r.run.artifact(Path(labels.path).with_suffix(".json"))
    datasets.log_inputs(
        [datasets.label_file(r.project, labels, "weak-labels", "training")], r.run.run_id, r.parent_run_id
    )
    where = Path(labels.path).resolve().relative_to(r.project.root)
    r.tags.update(
        weak_labels_md5=labels.md5,
        weak_labels_path=where.as_posix(),
        weak_labels_in_dvc="yes" if labels.dvc else "no (not a DVC repository)",
    )
    r.message = f"weak labels {where} (md5 {labels.md5[:12]}){' pushed to the DVC remote' if labels.dvc else ''}"


def _loggable(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float | None]]:
    params = {k: v for k, v in info.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    return params, {k: v for k, v in info.items() if isinstance(v, float)}


def supervise(r: Record, sup: Supervision) -> None:
    from w2s.pipeline.predictions import predictions

    labels = r.inputs["weak_labels"]  # the weak labels it started from
    r.run.params({"method": r.cfg.method})
    r.run.tags({"student_labels_md5": sup.labels.md5})
    if sup.labels.md5 != labels.md5:  # the method wrote new labels: the student's training data
        record = [datasets.label_file(r.project, sup.labels, "student-labels", "training")]
        datasets.log_inputs(record, r.run.run_id, r.parent_run_id)
    if sup.refined is not None:
        params, metrics = _loggable(sup.refined.info)
        r.run.params(params)
        r.run.metrics(metrics)
        r.run.dict(sup.refined.info, "refine_info.json")
        r.run.tags({"cache_key": sup.refined.key, "reused": sup.refined.reused})
    for i, (ref, stage_labels) in enumerate(sup.chain, start=1):
        # a cross-fitted stage has one best step per fold: those are in its info artifact
        best = {f"stage{i}_best_step": ref.info["best_step"]} if "best_step" in ref.info else {}
        r.run.metrics({**best, f"stage{i}_test_rows": len(predictions(ref, "test"))})
        r.run.dict(ref.info, f"stage{i}_info.json")
        r.run.tags({f"stage{i}_labels_md5": stage_labels.md5, f"stage{i}_cache_key": ref.key})
    r.tags["student_labels_md5"] = sup.labels.md5
    changed = sup.refined.info.get("changed_frac_transfer", 0.0) if sup.refined else 0.0
    refined = f" (changed {100 * changed:.1f}% of transfer labels)" if sup.refined else ""
    r.message = f"method {r.cfg.method}: student labels {sup.labels.md5[:12]}{refined}"


def _strong(r: Record, kind: str, ref: ModelRef, members: list[str] | None) -> None:
    """A strong model's training: settings, cache key, backend, curve, speed and figures."""
    from w2s.analysis.plots import curve_png, plot_weights

    r.run.params({"strong": r.cfg.strong.model_dump(mode="json"), "role": kind})
    info = ref.info
    ranks = info.get("ranks") or {}
    r.run.tags(
        {
            "cache_key": ref.key,
            "reused": ref.reused,
            "backend": info.get("backend", "torch"),
            "world_size": ranks.get("world_size", 1),
        }
    )
    if ranks:  # only this process logs: the ranks wrote files, never to MLflow
        r.run.dict(ranks, "deepspeed_ranks.json")
    r.run.curve(info["curve"])
    keys = ("best_step", "steps", "train_seconds", "examples_per_s", "truncated_texts", "flip_rate")
    r.run.metrics({k: info.get(k) for k in keys})
    r.run.artifact(curve_png(info["curve"], kind, r.cache, r.out_dir))
    if "weight_history" in info:  # weights the loss learned over several supervisors
        names = members or [f"member {i}" for i in range(len(info["ensemble_weights"]))]
        r.run.dict(info["weight_history"], "ensemble_weight_history.json")
        r.run.metrics({f"weight.{m}": w for m, w in zip(names, info["ensemble_weights"], strict=True)})
        png = r.out_dir / "ensemble_weights.png"
        plot_weights(info["weight_history"], names, png)
        r.run.artifact(png)
    r.message = (
        f"{kind} model {ref.key[:12]} {'reused from cache' if ref.reused else 'trained'} "
        f"(best step {info['best_step']} of {info['steps']})"
    )


def student(r: Record, ref: ModelRef) -> None:
    supervision: Supervision = r.inputs["supervise"]
    _strong(r, "w2s", ref, supervision.labels.members)
    lora = r.cfg.strong.lora
    r.tags.update(
        strong_base_model=r.cfg.strong.model,
        strong_adapter=f"lora r={lora.r} alpha={lora.alpha:g}" if lora.r else "none (every weight trained)",
        strong_trainable_params=ref.info.get("trainable_params"),
    )


def trained(kind: str) -> Any:
    """The record of a strong model trained on ground truth (`ceiling`, `budget`)."""

    def record(r: Record, ref: ModelRef) -> None:
        _strong(r, kind, ref, None)

    record.__name__ = kind
    return record


def evaluate(r: Record, metrics: dict[str, float | None]) -> None:
    from w2s.io import write_json

    r.run.metrics(metrics)
    RunLog(r.parent_run_id).metrics(metrics)
    write_json(r.out_dir / "metrics.json", metrics)  # the run folder's own record
    r.message = "metrics: " + ", ".join(
        f"{k} {metrics[k]:.3f}" for k in ("weak_acc", "w2s_acc", "ceiling_acc") if metrics.get(k) is not None
    )


def evaluate_views(project: Project, metrics: dict[str, float | None], inputs: dict[str, Any]) -> None:
    """The project's DVC views of a run (metrics.json, the training curves under plots/), written
    by the flow and by `dvc repro`'s evaluate stage alike."""
    from w2s.analysis.dvc_views import curves, write_run_views

    models = {"w2s": inputs["student"], "ceiling": inputs["ceiling"], "budget": inputs["budget"]}
    write_run_views(project.root, metrics, curves(**models))

"""Tasks of the W2S method: weak-model selection, and the labels the student trains on."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s.config import Config
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.methods.base import Supervision
from w2s.ops import datasets, tracking
from w2s.pipeline import steps
from w2s.pipeline.weak_selection import Selection


@task(name="select-weak", cache_policy=NO_CACHE, **RETRY)
def select_weak(ctx: RunContext, cfg: Config, splits: SplitsRef, table: TableRef) -> Selection | None:
    """Pick the weak supervisor with the lowest predicted strong error; log the whole table."""
    from prefect.artifacts import create_table_artifact

    with tracking.stage_run(ctx.parent_run_id, "select-weak") as run:
        selection = ctx.steps(run).select(cfg, splits, table)
        if selection is None:
            return None
        rows = selection.candidates
        run.dict(rows, "weak_selection.json")
        for row in rows:
            run.metrics({f"{row['candidate']}.{k}": row[k] for k in ("err_w_cv", "misfit", "predicted_strong_err")})
        run.metrics(selection.metrics())  # hindsight diagnostics: computed after the choice
        run.tags({"chosen_weak": selection.chosen})
    create_table_artifact(rows, key="w2s-weak-selection", description=f"weak-model selection: chose {selection.chosen}")
    chosen = next(r for r in rows if r["candidate"] == selection.chosen)
    get_run_logger().info(
        "weak-model selection chose %s (predicted strong error %.4f)", selection.chosen, chosen["predicted_strong_err"]
    )
    return selection


def _loggable(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float | None]]:
    params = {k: v for k, v in info.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    return params, {k: v for k, v in info.items() if isinstance(v, float)}


@task(name="supervise", cache_policy=NO_CACHE, **RETRY)
def supervise(
    ctx: RunContext, cfg: Config, splits: SplitsRef, table: TableRef, weak: ModelRef, labels: LabelsRef
) -> Supervision:
    """The method builds the student's labels (refined, or through intermediate students); each
    label file it publishes is gated and DVC-versioned; log what it did."""
    with tracking.stage_run(ctx.parent_run_id, "supervise") as run:
        sup = ctx.steps(run).supervise(cfg, splits, table, weak, labels)
        run.params({"method": cfg.method})
        run.tags({"student_labels_md5": sup.labels.md5})
        if sup.labels.md5 != labels.md5:  # the method wrote new labels: the student's training data
            record = [datasets.label_file(ctx.project, sup.labels, "student-labels", "training")]
            datasets.log_inputs(record, run.run_id, ctx.parent_run_id)
        if sup.refined is not None:
            params, metrics = _loggable(sup.refined.info)
            run.params(params)
            run.metrics(metrics)
            run.dict(sup.refined.info, "refine_info.json")
            run.tags({"cache_key": sup.refined.key, "reused": sup.refined.reused})
        for i, (ref, stage_labels) in enumerate(sup.chain, start=1):
            test = steps.predictions(ref, "test")
            # a cross-fitted stage has one best step per fold: those are in its info artifact
            best = {f"stage{i}_best_step": ref.info["best_step"]} if "best_step" in ref.info else {}
            run.metrics({**best, f"stage{i}_test_rows": len(test)})
            run.dict(ref.info, f"stage{i}_info.json")
            run.tags({f"stage{i}_labels_md5": stage_labels.md5, f"stage{i}_cache_key": ref.key})
    changed = sup.refined.info.get("changed_frac_transfer", 0.0) if sup.refined else 0.0
    get_run_logger().info(
        "method %s: student labels %s%s",
        cfg.method,
        sup.labels.md5[:12],
        f" (changed {100 * changed:.1f}% of transfer labels)" if sup.refined else "",
    )
    return sup

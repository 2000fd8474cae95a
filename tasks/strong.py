"""Tasks: train the strong student on its labels, the ceiling on transfer ground truth and the
budget baseline on the weak model's ground truth."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s.analysis.plots import curve_png, plot_weights
from w2s.config import Config
from w2s.core.refs import ModelRef, SplitsRef
from w2s.methods.base import Supervision
from w2s.ops import tracking
from w2s.ops.tracking import RunLog
from w2s.pipeline.strong import BudgetRun, CeilingRun, StudentRun


def _log(run: RunLog, ctx: RunContext, cfg: Config, kind: str, ref: ModelRef, members: list[str] | None) -> None:
    run.params({"strong": cfg.strong.model_dump(mode="json"), "role": kind})
    info = ref.info
    ranks = info.get("ranks") or {}
    run.tags(
        {
            "cache_key": ref.key,
            "reused": ref.reused,
            "backend": info.get("backend", "torch"),
            "world_size": ranks.get("world_size", 1),
        }
    )
    if ranks:  # only this process logs: the ranks wrote files, never to MLflow
        run.dict(ranks, "deepspeed_ranks.json")
    run.curve(info["curve"])
    run.metrics(
        {
            k: info.get(k)
            for k in ("best_step", "steps", "train_seconds", "examples_per_s", "truncated_texts", "flip_rate")
        }
    )
    run.artifact(curve_png(info["curve"], kind, ctx.cache, ctx.out))
    if "weight_history" in info:  # weights the loss learned over several supervisors
        names = members or [f"member {i}" for i in range(len(info["ensemble_weights"]))]
        run.dict(info["weight_history"], "ensemble_weight_history.json")
        run.metrics({f"weight.{m}": w for m, w in zip(names, info["ensemble_weights"], strict=True)})
        png = ctx.out / "ensemble_weights.png"
        plot_weights(info["weight_history"], names, png)
        run.artifact(png)
    get_run_logger().info(
        "%s model %s %s (best step %s of %s)",
        kind,
        ref.key[:12],
        "reused from cache" if ref.reused else "trained",
        info["best_step"],
        info["steps"],
    )


@task(name="strong-model", cache_policy=NO_CACHE, **RETRY)
def train_student(ctx: RunContext, cfg: Config, splits: SplitsRef, supervision: Supervision) -> ModelRef:
    """The weak-to-strong student on the labels its method built."""
    with tracking.stage_run(ctx.parent_run_id, StudentRun.stage) as run:
        ref = ctx.steps(run).student(cfg, splits, supervision)
        _log(run, ctx, cfg, StudentRun.kind, ref, supervision.labels.members)
    return ref


@task(name="strong-model", cache_policy=NO_CACHE, **RETRY)
def train_ceiling(ctx: RunContext, cfg: Config, splits: SplitsRef) -> ModelRef:
    """The same strong model on transfer ground truth."""
    with tracking.stage_run(ctx.parent_run_id, CeilingRun.stage) as run:
        ref = ctx.steps(run).ceiling(cfg, splits)
        _log(run, ctx, cfg, CeilingRun.kind, ref, None)
    return ref


@task(name="strong-model", cache_policy=NO_CACHE, **RETRY)
def train_budget(ctx: RunContext, cfg: Config, splits: SplitsRef) -> ModelRef:
    """The same strong model on the weak model's ground-truth budget (weak_train): a baseline."""
    with tracking.stage_run(ctx.parent_run_id, BudgetRun.stage) as run:
        ref = ctx.steps(run).budget(cfg, splits)
        _log(run, ctx, cfg, BudgetRun.kind, ref, None)
    return ref

"""Task: train the strong student on weak labels, or the ceiling on ground truth."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s import strong, tracking
from w2s.plots import plot_curve, plot_weights
from w2s.refs import ModelRef, SplitsRef


@task(name="strong-model", cache_policy=NO_CACHE, **RETRY)
def train_strong(ctx: RunContext, splits: SplitsRef, role: str,
                 labels: dict | None = None) -> ModelRef:
    """`role="w2s"`: the student on `labels`; `role="ceiling"`: the same model on ground truth."""
    stage = "strong-w2s" if role == "w2s" else "strong-ceiling"
    with tracking.stage_run(ctx.parent_run_id, stage) as run:
        ref = strong.train_strong(splits, ctx.cfg, ctx.cache, role,
                                  labels["path"] if labels else None, labels["md5"] if labels else None)
        run.params({"strong": ctx.cfg.strong.model_dump(mode="json"), "role": role})
        ranks = ref.info.get("ranks") or {}
        run.tags({"cache_key": ref.key, "reused": ref.reused, "backend": ref.info.get("backend", "torch"),
                  "world_size": ranks.get("world_size", 1)})
        if ranks:  # only this process logs: the ranks wrote files, never to MLflow
            run.dict(ranks, "deepspeed_ranks.json")
        info = ref.info
        run.curve(info["curve"])
        run.metrics({k: info.get(k) for k in ("best_step", "steps", "train_seconds", "examples_per_s",
                                               "truncated_texts", "flip_rate")})
        png = ctx.out / f"curve_{role}.png"
        plot_curve(info["curve"], png, title=f"{role}: evaluations during training")
        run.artifact(png)
        if "weight_history" in info:  # weak ensemble: how the member weights moved
            members = labels.get("members") or [f"member {i}" for i in range(len(info["ensemble_weights"]))]
            run.dict(info["weight_history"], "ensemble_weight_history.json")
            run.metrics({f"weight.{m}": w for m, w in zip(members, info["ensemble_weights"], strict=True)})
            png = ctx.out / "ensemble_weights.png"
            plot_weights(info["weight_history"], members, png)
            run.artifact(png)
    get_run_logger().info("%s model %s %s (best step %s of %s)", role, ref.key[:12],
                          "reused from cache" if ref.reused else "trained",
                          info["best_step"], info["steps"])
    return ref

"""The PyTorch training loop shared by weak encoders, the student and the ceiling.

AdamW with linear warm-up and cosine decay, length-grouped batches with dynamic padding,
periodic evaluation, and the best checkpoint (by the caller's selection score) kept in memory
and restored at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from w2s.config import EncoderTrainConfig
from w2s.losses import Loss
from w2s.models.batching import Batchable, length_grouped_batches

Evaluator = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    """What training did: steps, speed, the evaluation curve and the checkpoint it kept."""

    steps: int
    seconds: float
    examples_per_s: float
    best_step: int
    best_score: float | None
    curve: list[dict[str, Any]] = field(default_factory=list)


def warmup_cosine(total: int, warmup_frac: float) -> Callable[[int], float]:
    """LR multiplier: linear from 0 to 1 over the warm-up, then cosine down to 0."""
    warm = max(1, int(round(total * warmup_frac)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(
    model: torch.nn.Module,
    enc: Batchable,
    targets: np.ndarray,
    cfg: EncoderTrainConfig,
    seed: int,
    loss_fn: Loss,
    evaluate: Evaluator | None = None,
    select: str | None = None,
    desc: str = "train",
    aux: Callable[[torch.nn.Module, np.ndarray, float], torch.Tensor] | None = None,
) -> TrainResult:
    """Fit `model` to soft `targets` (N x K, or N x M x K for a loss that takes several teachers);
    keep the checkpoint with the highest `select` score. `aux(model, batch_idx, step_frac)` adds
    a regulariser (e.g. perturbation consistency) to each step's loss."""
    from tqdm.auto import tqdm

    if len(enc) != len(targets):
        raise ValueError(f"{len(enc)} encoded examples but {len(targets)} targets")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    target_t = torch.as_tensor(targets, dtype=torch.float32)
    steps_per_epoch = math.ceil(len(enc) / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    no_decay = ("bias", "LayerNorm.weight", "norm.weight")
    params = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, warmup_cosine(total, cfg.warmup_frac))

    lengths = enc.lengths
    best_state: dict[str, torch.Tensor] | None = None
    best_score: float | None = None
    best_step = total
    curve: list[dict[str, Any]] = []
    recent: list[float] = []
    seen = 0
    start = time.perf_counter()
    model.train()
    step = 0
    bar = tqdm(total=total, desc=desc, leave=False, unit="step", disable=None)  # None: off when not a TTY
    while step < total:
        for idx in length_grouped_batches(lengths, cfg.batch_size, rng):
            loss = loss_fn(model(*enc.batch(idx)), target_t[idx], step / total)
            if aux is not None:
                loss = loss + aux(model, idx, step / total)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            step += 1
            seen += len(idx)
            recent.append(loss.item())
            bar.update(1)
            if evaluate is not None and (step % eval_every == 0 or step == total):
                point = {"step": step, "epoch": step / steps_per_epoch,
                         "train_loss": float(np.mean(recent)), **evaluate(model)}
                recent.clear()
                curve.append(point)
                model.train()
                score = point.get(select) if select else None
                if score is not None and (best_score is None or score > best_score):
                    best_score, best_step = float(score), step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if step >= total:
                break
    bar.close()
    seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(step, seconds, seen / max(seconds, 1e-9), best_step, best_score, curve)

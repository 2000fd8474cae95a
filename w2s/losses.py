"""Student losses as small callables `(logits, weak_probs, step_frac) -> scalar loss`.

`weak_probs` are soft targets over K classes (rows sum to 1); `step_frac` is the fraction of
training done, for losses that change over training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def xent(logits: torch.Tensor, weak_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
    """Cross-entropy against the soft weak labels: mean of -sum_k p_w,k log p_s,k."""
    del step_frac  # constant over training
    return -(weak_probs * F.log_softmax(logits, dim=-1)).sum(-1).mean()


LOSSES: dict[str, Loss] = {"xent": xent}

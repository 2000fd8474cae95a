"""Weak ensembles with learned weights (RAVEN, Jeon et al.).

The student's target is `sum_m w_m p_m(x)` with `w` on the simplex. After every student step the
weights take one SGD step on the same loss with the student's predictions held fixed, are clamped
at 1e-6 and renormalised. The gradient of that loss in `w_m` is `CE(p_m, p_s)`, so the weights
flow toward the members the student already agrees with; two safeguards keep that from
amplifying an early mistake: the weights stay frozen for the first `freeze_frac` of training, and
for the first `easy_frac` only the rows on which every member agrees are learned from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

FLOOR = 1e-6


def initial_weights(member_probs: np.ndarray, init: str) -> np.ndarray:
    """Uniform, or proportional to the inverse mean prediction entropy (N x M x K input)."""
    m = member_probs.shape[1]
    if init == "uniform":
        return np.full(m, 1.0 / m)
    if init != "entropy":
        raise ValueError(f"unknown ensemble init '{init}'")
    ent = -(member_probs * np.log(np.clip(member_probs, 1e-12, 1.0))).sum(-1).mean(0)
    inv = 1.0 / np.maximum(ent, 1e-6)
    return inv / inv.sum()


def mixture(weights: np.ndarray, member_probs: np.ndarray) -> np.ndarray:
    """`sum_m w_m p_m` for N x M x K member probabilities."""
    return np.einsum("m,nmk->nk", weights, member_probs)


class EnsembleLoss:
    """Student loss over N x M x K member probabilities with jointly learned simplex weights."""

    def __init__(self, weights: np.ndarray, lr: float, freeze_frac: float, easy_frac: float) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64).clone()
        self.lr = lr
        self.freeze_frac = freeze_frac
        self.easy_frac = easy_frac
        self.history: list[dict[str, Any]] = []

    def target(self, member_probs: torch.Tensor) -> torch.Tensor:
        """The current mixture (detached)."""
        w = self.weights.to(device=member_probs.device, dtype=member_probs.dtype)
        return torch.einsum("m,nmk->nk", w, member_probs)

    def _rows(self, member_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        """Rows that count at this point of training: the easy ones (all members agree) early on."""
        if step_frac >= self.easy_frac:
            return torch.ones(len(member_probs), dtype=torch.bool, device=member_probs.device)
        votes = member_probs.argmax(-1)
        easy = (votes == votes[:, :1]).all(1)
        return easy if easy.any() else torch.ones_like(easy)

    def _update(self, logits: torch.Tensor, member_probs: torch.Tensor, rows: torch.Tensor) -> None:
        w = self.weights.clone().requires_grad_(True)
        rows = rows.cpu()
        log_ps = F.log_softmax(logits.detach().double().cpu(), dim=-1)[rows]
        tgt = torch.einsum("m,nmk->nk", w, member_probs.detach().double().cpu()[rows])
        loss = -(tgt * log_ps).sum(-1).mean()
        (grad,) = torch.autograd.grad(loss, w)
        new = (self.weights - self.lr * (grad - grad.mean())).clamp_min(FLOOR)
        self.weights = new / new.sum()

    def __call__(self, logits: torch.Tensor, member_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        if member_probs.dim() != 3:
            raise ValueError("the ensemble loss needs N x M x K member probabilities")
        rows = self._rows(member_probs, step_frac)
        per_row = -(self.target(member_probs).detach() * F.log_softmax(logits.float(), dim=-1)).sum(-1)
        loss = per_row[rows].mean()
        if step_frac >= self.freeze_frac:
            self._update(logits, member_probs, rows)
        self.history.append({"step_frac": round(step_frac, 6), "easy_rows": int(rows.sum()),
                             "weights": [round(float(v), 6) for v in self.weights]})
        return loss

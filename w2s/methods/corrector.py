"""Weak-label corrector (Aligner, reduced to classification).

`logit_c = log p_w + r([emb(x), p_w])`: a small residual network over strong embeddings and the
weak probabilities whose last layer starts at zero, so before training it returns the weak labels
exactly. It is fit on the weak budget against ground truth using the weak model's *out-of-fold*
probabilities there (cross-fitting), because the weak model's in-sample predictions on its own
training labels are memorised and would teach the corrector to trust it blindly. Its labels come
from the budget the weak supervisor already had, so it counts as part of the weak supervisor.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from pydantic import Field

from w2s.core.config import Section
from w2s.methods.base import Refined, RefineInputs, RefiningMethod


class CorrectorConfig(Section):
    hidden: int = Field(64, ge=1, description="Hidden units of the residual corrector r(emb, p_w).")
    steps: int = Field(300, ge=0, description="Full-batch Adam steps on the weak budget.")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(1e-2, ge=0, description="L2 penalty that keeps the residual small.")
    folds: int = Field(5, ge=2, description="Cross-fitting folds for out-of-fold weak predictions.")


@cache
def _corrector_class() -> type:
    """The residual corrector module (defined on first use: torch is imported only then)."""
    import torch
    from torch import nn

    class Corrector(nn.Module):
        """Residual corrector; `forward(x, p_w)` returns corrected logits."""

        def __init__(self, dim: int, k: int, hidden: int) -> None:
            super().__init__()
            out = nn.Linear(hidden, k)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
            self.residual = nn.Sequential(nn.Linear(dim + k, hidden), nn.Tanh(), out)

        def forward(self, x: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
            log_w = torch.log(weak_probs.clamp_min(1e-12))
            return log_w + self.residual(torch.cat([x, weak_probs], dim=1))

    return Corrector


def fit_corrector(
    x: np.ndarray, weak_oof: np.ndarray, y: np.ndarray, cfg: CorrectorConfig, seed: int
) -> tuple[Any, list[float]]:
    """Full-batch Adam on the budget; returns the corrector and its loss per step."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    k = weak_oof.shape[1]
    model = _corrector_class()(x.shape[1], k, cfg.hidden).double()
    xt, wt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(weak_oof, dtype=torch.float64)
    yt = torch.as_tensor(np.array(y), dtype=torch.long)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses = []
    for _ in range(cfg.steps):
        loss = nn.functional.cross_entropy(model(xt, wt), yt)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    return model.eval(), losses


def correct(model: Any, x: np.ndarray, weak_probs: np.ndarray) -> np.ndarray:
    """Corrected label probabilities for the target rows."""
    import torch

    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(weak_probs, dtype=torch.float64))
        return torch.softmax(logits, dim=1).numpy()


class CorrectorMethod(RefiningMethod):
    name = "corrector"
    summary = "Aligner, reduced: a residual weak-label corrector fit on the weak budget"
    Settings = CorrectorConfig

    def refine(self, inp: RefineInputs) -> Refined:
        c = self.settings
        oof = inp.weak_oof(c.folds)
        model, losses = fit_corrector(inp.embed(inp.budget), oof, inp.y_budget, c, self.cfg.seed)
        probs = correct(model, inp.embed(inp.targets), inp.weak_probs)
        info = {
            "steps": c.steps,
            "budget_loss_start": losses[0] if losses else None,
            "budget_loss_end": losses[-1] if losses else None,
            "weak_oof_acc": float(np.mean(oof.argmax(1) == inp.y_budget)),
        }
        return Refined(probs, info)


METHOD = CorrectorMethod

"""Weak-label corrector (Aligner, reduced to classification).

`logit_c = log p_w + r([emb(x), p_w])`: a small residual network over strong embeddings and the
weak probabilities whose last layer starts at zero, so before training it returns the weak labels
exactly. It is fit on the weak budget against ground truth using the weak model's *out-of-fold*
probabilities there (cross-fitting), because the weak model's in-sample predictions on its own
training labels are memorised and would teach the corrector to trust it blindly. Its labels come
from the budget the weak supervisor already had, so it counts as part of the weak supervisor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from w2s.config import CorrectorConfig


class Corrector(nn.Module):
    """Residual corrector; `forward(x, p_w)` returns corrected logits."""

    def __init__(self, dim: int, k: int, hidden: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(nn.Linear(dim + k, hidden), nn.Tanh(), nn.Linear(hidden, k))
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)

    def forward(self, x: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
        log_w = torch.log(weak_probs.clamp_min(1e-12))
        return log_w + self.residual(torch.cat([x, weak_probs], dim=1))


def fit_corrector(x: np.ndarray, weak_oof: np.ndarray, y: np.ndarray, cfg: CorrectorConfig,
                  seed: int) -> tuple[Corrector, list[float]]:
    """Full-batch Adam on the budget; returns the corrector and its loss per step."""
    torch.manual_seed(seed)
    k = weak_oof.shape[1]
    model = Corrector(x.shape[1], k, cfg.hidden).double()
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


def correct(model: Corrector, x: np.ndarray, weak_probs: np.ndarray) -> np.ndarray:
    """Corrected label probabilities for the target rows."""
    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(weak_probs, dtype=torch.float64))
        return torch.softmax(logits, dim=1).numpy()

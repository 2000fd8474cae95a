"""Weak-label corrector (Aligner, reduced to classification).

`logit_c = log p_w + r([phi(x), p_w])`: a small residual network over text features `phi(x)` and
the weak probabilities whose last layer starts at zero, so before training it returns the weak
labels exactly. `corrector.features` says what `phi` is: `strong`, the strong model's frozen
embeddings (the reduced form that borrows the strong model), or `weak`, weak-side inputs only: the
weak supervisor's own TF-IDF features (its vectoriser, fit on the budget's texts), or for a weak
encoder its pretrained (truncated) embedding. The `weak` variant separates correction from
borrowing the strong model. It is fit on the weak budget against ground truth using the weak model's *out-of-fold*
probabilities there (cross-fitting), because the weak model's in-sample predictions on its own
training labels are memorised and would teach the corrector to trust it blindly. Its labels come
from the budget the weak supervisor already had, so it counts as part of the weak supervisor.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import numpy as np
from pydantic import Field

from w2s.core.config import Section, WeakConfig
from w2s.methods.base import Refined, RefineInputs, RefiningMethod


class CorrectorConfig(Section):
    hidden: int = Field(64, ge=1, description="Hidden units of the residual corrector r(emb, p_w).")
    steps: int = Field(300, ge=0, description="Full-batch Adam steps on the weak budget.")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(1e-2, ge=0, description="L2 penalty that keeps the residual small.")
    folds: int = Field(5, ge=2, description="Cross-fitting folds for out-of-fold weak predictions.")
    features: Literal["strong", "weak"] = Field(
        "strong",
        description="What the residual reads besides the weak probabilities: strong (the strong "
        "model's frozen embeddings) or weak (weak-side inputs only: the weak model's TF-IDF features, "
        "or a weak encoder's pretrained embedding), to separate correction from borrowing the strong model.",
    )


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
            if not x.is_sparse:
                return log_w + self.residual(torch.cat([x, weak_probs], dim=1))
            # sparse features (TF-IDF): the same first layer, split at the features' width
            first, dim = self.residual[0], x.shape[1]
            assert isinstance(first, nn.Linear)
            hidden = torch.sparse.mm(x, first.weight[:, :dim].T) + weak_probs @ first.weight[:, dim:].T + first.bias
            return log_w + self.residual[2](self.residual[1](hidden))

    return Corrector


def _features(x: Any) -> Any:
    """A float64 tensor of dense features, or a sparse one of a scipy sparse matrix."""
    import torch
    from scipy import sparse

    if sparse.issparse(x):
        coo = sparse.coo_matrix(x)
        indices = torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
        values = torch.as_tensor(coo.data, dtype=torch.float64)
        return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False).coalesce()
    return torch.as_tensor(x, dtype=torch.float64)


def fit_corrector(
    x: Any, weak_oof: np.ndarray, y: np.ndarray, cfg: CorrectorConfig, seed: int
) -> tuple[Any, list[float]]:
    """Full-batch Adam on the budget; returns the corrector and its loss per step. `x`: dense
    features, or a scipy sparse matrix (TF-IDF)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    k = weak_oof.shape[1]
    model = _corrector_class()(x.shape[1], k, cfg.hidden).double()
    xt, wt = _features(x), torch.as_tensor(weak_oof, dtype=torch.float64)
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


def correct(model: Any, x: Any, weak_probs: np.ndarray) -> np.ndarray:
    """Corrected label probabilities for the target rows."""
    import torch

    with torch.no_grad():
        logits = model(_features(x), torch.as_tensor(weak_probs, dtype=torch.float64))
        return torch.softmax(logits, dim=1).numpy()


def weak_side_features(inp: RefineInputs, weak: WeakConfig) -> tuple[Any, Any]:
    """Features of the budget and target rows that come from the weak side alone: the weak model's
    own TF-IDF featuriser fit on the budget's texts (as the weak model fits it: no label enters a
    TF-IDF fit), or a weak encoder's pretrained embedding (not its fine-tuned one, which has
    memorised the budget's labels)."""
    if weak.kind == "tfidf":
        from w2s.core.models.weak import tfidf_vectorizer

        vectorizer = tfidf_vectorizer(weak).fit(inp.budget["text"].tolist())
        return vectorizer.transform(inp.budget["text"].tolist()), vectorizer.transform(inp.targets["text"].tolist())
    return inp.embed_rows(weak.encoder, inp.budget), inp.embed_rows(weak.encoder, inp.targets)


class CorrectorMethod(RefiningMethod):
    name = "corrector"
    summary = "Aligner, reduced: a residual weak-label corrector fit on the weak budget"
    Settings = CorrectorConfig

    def refine(self, inp: RefineInputs) -> Refined:
        c = self.settings
        oof = inp.weak_oof(c.folds)
        if c.features == "strong":
            x_budget, x_targets = inp.embed(inp.budget), inp.embed(inp.targets)
        else:
            x_budget, x_targets = weak_side_features(inp, self.cfg.weak)
        model, losses = fit_corrector(x_budget, oof, inp.y_budget, c, self.cfg.seed)
        probs = correct(model, x_targets, inp.weak_probs)
        info = {
            "features": c.features,
            "feature_dim": int(x_budget.shape[1]),
            "steps": c.steps,
            "budget_loss_start": losses[0] if losses else None,
            "budget_loss_end": losses[-1] if losses else None,
            "weak_oof_acc": float(np.mean(oof.argmax(1) == inp.y_budget)),
        }
        return Refined(probs, info)


METHOD = CorrectorMethod

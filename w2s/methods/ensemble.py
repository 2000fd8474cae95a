"""Weak ensembles with learned weights (RAVEN, Jeon et al.).

The student's target is `sum_m w_m p_m(x)` with `w` on the simplex. After every student step the
weights take one SGD step on the same loss with the student's predictions held fixed, are clamped
at 1e-6 and renormalised. The gradient of that loss in `w_m` is `CE(p_m, p_s)`, so the weights
flow toward the members the student already agrees with; two safeguards keep that from
amplifying an early mistake: the weights stay frozen for the first `freeze_frac` of training, and
for the first `easy_frac` only the rows on which every member agrees are learned from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from w2s.core.config import Section, WeakConfig
from w2s.core.metric_schema import Metric
from w2s.methods.base import Refined, RefineInputs, RefiningMethod, Supervision

if TYPE_CHECKING:
    import torch

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
        import torch

        self.weights = torch.as_tensor(weights, dtype=torch.float64).clone()
        self.lr = lr
        self.freeze_frac = freeze_frac
        self.easy_frac = easy_frac
        self.history: list[dict[str, Any]] = []

    def target(self, member_probs: torch.Tensor) -> torch.Tensor:
        """The current mixture (detached)."""
        import torch

        w = self.weights.to(device=member_probs.device, dtype=member_probs.dtype)
        return torch.einsum("m,nmk->nk", w, member_probs)

    def _rows(self, member_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        """Rows that count at this point of training: the easy ones (all members agree) early on."""
        import torch

        if step_frac >= self.easy_frac:
            return torch.ones(len(member_probs), dtype=torch.bool, device=member_probs.device)
        votes = member_probs.argmax(-1)
        easy = (votes == votes[:, :1]).all(1)
        return easy if easy.any() else torch.ones_like(easy)

    def _update(self, logits: torch.Tensor, member_probs: torch.Tensor, rows: torch.Tensor) -> None:
        import torch
        import torch.nn.functional as F

        w = self.weights.clone().requires_grad_(True)
        rows = rows.cpu()
        log_ps = F.log_softmax(logits.detach().double().cpu(), dim=-1)[rows]
        tgt = torch.einsum("m,nmk->nk", w, member_probs.detach().double().cpu()[rows])
        loss = -(tgt * log_ps).sum(-1).mean()
        (grad,) = torch.autograd.grad(loss, w)
        new = (self.weights - self.lr * (grad - grad.mean())).clamp_min(FLOOR)
        self.weights = new / new.sum()

    def __call__(self, logits: torch.Tensor, member_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        import torch.nn.functional as F

        if member_probs.dim() != 3:
            raise ValueError("the ensemble loss needs N x M x K member probabilities")
        rows = self._rows(member_probs, step_frac)
        per_row = -(self.target(member_probs).detach() * F.log_softmax(logits.float(), dim=-1)).sum(-1)
        loss = per_row[rows].mean()
        if step_frac >= self.freeze_frac:
            self._update(logits, member_probs, rows)
        self.history.append(
            {
                "step_frac": round(step_frac, 6),
                "easy_rows": int(rows.sum()),
                "weights": [round(float(v), 6) for v in self.weights],
            }
        )
        return loss

    def report(self) -> dict[str, Any]:
        """What training learned besides the model: the final weights and their history."""
        return {"ensemble_weights": self.weights.tolist(), "weight_history": self.history}


class EnsembleMember(Section):
    weak: WeakConfig = Field(default_factory=WeakConfig, description="The member's weak supervisor.")
    subset_frac: float = Field(
        1.0, gt=0, le=1, description="Train on this deterministic fraction of weak_train (stratified)."
    )
    subset_seed: int = Field(0, ge=0, description="Which subset, when subset_frac < 1.")
    groups: list[str] = Field(
        default_factory=list,
        description="Train only on the weak_train rows of these groups (the data's `group` column; "
        "with split.source_groups, a part of the shifted source). Empty: all of weak_train.",
    )


class EnsembleConfig(Section):
    members: dict[str, EnsembleMember] = Field(
        default_factory=lambda: {
            "tfidf": EnsembleMember(),
            "minilm-1l": EnsembleMember(weak=WeakConfig(kind="encoder")),
            "tfidf-half": EnsembleMember(subset_frac=0.5, subset_seed=1),
        },
        description="Named weak supervisors of the ensemble (at least two).",
    )
    init: Literal["uniform", "entropy"] = Field(
        "uniform",
        description="Initial simplex weights: uniform, or inversely proportional to "
        "each member's mean prediction entropy on transfer.",
    )
    lr: float = Field(0.5, gt=0, description="SGD learning rate of the weights, one step after each student step.")
    freeze_frac: float = Field(0.1, ge=0, le=1, description="Fraction of training with the weights frozen.")
    easy_frac: float = Field(
        0.25, ge=0, le=1, description="Fraction of training on easy samples only (all members agree)."
    )

    @model_validator(mode="after")
    def _two_members(self) -> EnsembleConfig:
        if len(self.members) < 2:
            raise ValueError("ensemble.members needs at least two weak supervisors")
        return self


class Ensemble(RefiningMethod):
    name = "ensemble"
    summary = "RAVEN: several weak supervisors with simplex weights learned with the student"
    Settings = EnsembleConfig
    member_labels = True
    declared_metrics = (
        Metric("weight.*", "The simplex weight the student learned for each weak member (weight.<member>).", None,
               aggregated=False),
    )  # fmt: skip

    def weak_models(self) -> list[WeakConfig]:
        return [m.weak for m in self.settings.members.values()]

    def refine(self, inp: RefineInputs) -> Refined:
        c = self.settings
        members, keys = {}, {}
        for name, member in c.members.items():
            subset = (member.subset_frac, member.subset_seed)
            members[name], ref = inp.train_weak(member.weak, subset, tuple(member.groups))
            keys[name] = ref.key
        stacked = np.stack(list(members.values()), axis=1)  # N x M x K
        weights = initial_weights(stacked[inp.is_transfer()], c.init)
        info = {
            "members": list(members),
            "member_cache_keys": keys,
            "init_weights": weights.tolist(),
            "all_agree_frac": float(np.mean((stacked.argmax(-1) == stacked.argmax(-1)[:, :1]).all(1))),
        }
        return Refined(mixture(weights, stacked), info, members)

    def objective(self) -> dict[str, Any]:
        return {"method": self.name, self.name: self.settings.model_dump(mode="json")}

    def student_loss(self, targets: np.ndarray) -> EnsembleLoss:
        c = self.settings
        return EnsembleLoss(initial_weights(targets, c.init), c.lr, c.freeze_frac, c.easy_frac)

    def metrics(self, supervision: Supervision, student_info: dict[str, Any]) -> dict[str, float]:
        learned = student_info.get("ensemble_weights")
        if learned is None or supervision.refined is None:
            return {}
        members = supervision.refined.info["members"]
        return {f"weight.{m}": float(v) for m, v in zip(members, learned, strict=True)}


METHOD = Ensemble

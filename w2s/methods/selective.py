"""Selective W2S (Lang, Huang, Li): the strong model's own labels where it knows the answer.

1. The strong model's own label: a logistic head on frozen strong embeddings, fit on the weak
   budget (the only ground truth there is).
2. P(IK): a logistic probe on [embedding, head confidence, head entropy] predicting whether the
   head is right, trained on the head's *out-of-fold* correctness on the budget.
3. Self-label (one-hot head label) where the gate score reaches `tau`, the weak (or smoothed
   weak) label elsewhere. `method=confidence` gates on the head's own confidence instead: the
   plain baseline P(IK) has to beat.

`tau` is either given or chosen on the weak budget by cross-fitting: the threshold whose combined
out-of-fold labels are most accurate there. Nothing outside weak_train is ever read for labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from w2s.core.config import Section
from w2s.core.cross_fit import logistic, out_of_fold
from w2s.core.metric_schema import Metric
from w2s.methods.base import Refined, RefineInputs, RefiningMethod, Supervision
from w2s.methods.smooth import smooth_inputs


@dataclass
class GateResult:
    """Refined labels of the target rows and what the gate did."""

    probs: np.ndarray
    gate: np.ndarray  # True where the strong model's own label was used
    info: dict[str, float | str | None]


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(1)


def _probe_features(x: np.ndarray, head: np.ndarray) -> np.ndarray:
    return np.hstack([x, head.max(1, keepdims=True), _entropy(head)[:, None]])


def _pik(x_fit: np.ndarray, head_fit: np.ndarray, right: np.ndarray, C: float, seed: int):
    """A P(IK) probe; returns a function of (features, head probs) -> P(head is right)."""
    probe = logistic(_probe_features(x_fit, head_fit), right.astype(np.int64), 2, C, seed)
    return lambda x, head: probe(_probe_features(x, head))[:, 1]


def choose_tau(score: np.ndarray, self_label: np.ndarray, weak: np.ndarray, y: np.ndarray) -> float:
    """The threshold whose combined labels (self where score >= tau, weak elsewhere) are most
    accurate on the budget; ties go to the highest (most conservative) threshold. A threshold
    above every score (no self-labels) is always a candidate, so the gate never does worse than
    the weak labels on the budget."""
    candidates = np.unique(np.concatenate([score, [np.inf]]))
    best_tau, best_acc = float("inf"), -1.0
    weak_right = weak.argmax(1) == y
    self_right = self_label == y
    for tau in candidates[::-1]:  # descending: on ties the higher threshold is kept
        acc = float(np.mean(np.where(score >= tau, self_right, weak_right)))
        if acc > best_acc:
            best_tau, best_acc = float(tau), acc
    return best_tau


def selective_labels(
    x_budget: np.ndarray,
    y_budget: np.ndarray,
    weak_oof: np.ndarray,
    x_target: np.ndarray,
    weak_target: np.ndarray,
    k: int,
    gate: str,
    tau: float | None,
    n_folds: int,
    C: float,
    seed: int,
) -> GateResult:
    """Gate between the strong head's own labels and `weak_target` (the weak or smoothed labels).

    `gate` is "pik" (selective W2S) or "confidence" (the baseline). `weak_oof` are the weak
    supervisor's out-of-fold probabilities on the budget, used only to choose `tau`.
    """
    if gate not in ("pik", "confidence"):
        raise ValueError(f"unknown gate '{gate}'")
    head = logistic(x_budget, y_budget, k, C, seed)
    head_target = head(x_target)
    head_oof = out_of_fold(
        y_budget, k, n_folds, seed, lambda f, h: logistic(x_budget[f], y_budget[f], k, C, seed)(x_budget[h])
    )
    right_oof = head_oof.argmax(1) == y_budget

    if gate == "pik":
        pik = _pik(x_budget, head_oof, right_oof, C, seed)
        score_target = pik(x_target, head_target)

        def pik_held_out(f: np.ndarray, h: np.ndarray) -> np.ndarray:
            p = _pik(x_budget[f], head_oof[f], right_oof[f], C, seed)(x_budget[h], head_oof[h])
            return np.stack([1 - p, p], axis=1)

        # The probe's own out-of-fold scores on the budget, for an honest threshold choice.
        score_budget = out_of_fold(right_oof.astype(np.int64), 2, n_folds, seed, pik_held_out)[:, 1]
    else:
        score_target, score_budget = head_target.max(1), head_oof.max(1)

    chosen = tau if tau is not None else choose_tau(score_budget, head_oof.argmax(1), weak_oof, y_budget)
    use_self = score_target >= chosen
    probs = np.where(use_self[:, None], np.eye(k)[head_target.argmax(1)], weak_target)
    info: dict[str, float | str | None] = {
        "gate": gate,
        "tau": None if not np.isfinite(chosen) else float(chosen),
        "tau_from": "config" if tau is not None else "weak budget (cross-fitted)",
        "head_oof_acc": float(right_oof.mean()),
        "weak_oof_acc": float(np.mean(weak_oof.argmax(1) == y_budget)),
        "budget_self_label_frac": float(np.mean(score_budget >= chosen)),
    }
    return GateResult(probs, use_self, info)


class SelectiveConfig(Section):
    tau: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Gate threshold: self-label where P(IK) (or, for "
        "method=confidence, the strong head's confidence) is at least tau. None: chosen on the "
        "weak budget by cross-fitting (no other ground truth is read).",
    )
    smooth: bool = Field(False, description="Use graph-smoothed weak labels outside the gate.")
    folds: int = Field(5, ge=2, description="Cross-fitting folds on the weak budget.")
    C: float = Field(1.0, gt=0, description="Inverse L2 regularisation of the strong head and the P(IK) probe.")


class Gate(RefiningMethod):
    """A gate between the strong head's own labels and the weak labels; `gate` names the score."""

    gate = "pik"
    declared_metrics = (
        Metric("self_label_frac", "Fraction of transfer rows the gate gave the strong model's own label.", None),
    )

    @property
    def settings(self) -> SelectiveConfig:
        return self.cfg.section("selective")

    def refine(self, inp: RefineInputs) -> Refined:
        c = self.settings
        base, info = inp.weak_probs, {}
        if c.smooth:
            base, smooth_info = smooth_inputs(inp, inp.weak_probs, self.cfg.section("smooth"))
            info.update({f"smooth_{k}": v for k, v in smooth_info.items()})
        result = selective_labels(
            inp.embed(inp.budget),
            inp.y_budget,
            inp.weak_oof(c.folds),
            inp.embed(inp.targets),
            base,
            inp.k,
            self.gate,
            c.tau,
            c.folds,
            c.C,
            self.cfg.seed,
        )
        info.update(result.info)
        info["self_label_frac"] = float(result.gate[inp.is_transfer()].mean())
        return Refined(result.probs, info)

    def metrics(self, supervision: Supervision, student_info: dict[str, Any]) -> dict[str, float]:
        info = supervision.refined.info if supervision.refined is not None else {}
        return {"self_label_frac": info["self_label_frac"]} if "self_label_frac" in info else {}


class Selective(Gate):
    name = "selective"
    summary = "Selective W2S: the strong model's own labels where P(IK) passes the gate, weak elsewhere"
    Settings = SelectiveConfig
    reads = ("smooth",)


METHOD = Selective

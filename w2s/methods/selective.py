"""Selective W2S (Lang, Huang, Li): the strong model's own answers where it knows the answer.

1. The strong model's own answer (`selective.self_labels`):
   - `zero_shot` (the paper's form): what the model says without any label. For a sentence
     encoder, the label whose description (`label_descriptions`, else its name) embeds closest
     (cosine) to the text, with a softmax of the similarities as its confidence.
   - `budget_probe` (an ablation): a logistic head on frozen strong embeddings fit on the weak
     budget's ground truth, a second supervisor rather than the model's own knowledge.
2. P(IK): a logistic probe on [embedding, answer confidence, answer entropy] trained on the
   budget to predict whether the own answer is right there (for budget_probe, the head's
   *out-of-fold* answers: a head fit on all of the budget is right on nearly all of it).
3. Self-label (the one-hot own answer) where the gate score reaches `tau`, the weak (or smoothed
   weak) label elsewhere. `method=confidence` gates on the answer's own confidence instead: the
   plain baseline P(IK) has to beat.

`tau` is either given or chosen on the weak budget by cross-fitting: the threshold whose combined
out-of-fold labels are most accurate there. Nothing outside weak_train is ever read for labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from w2s.core.config import Section
from w2s.core.cross_fit import logistic, out_of_fold
from w2s.core.metric_schema import Metric
from w2s.errors import ConfigError
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


@dataclass
class OwnAnswers:
    """The strong model's own answers as class probabilities: on the budget rows (each read
    without that row's label, so their accuracy there is honest) and on the target rows."""

    budget: np.ndarray
    target: np.ndarray
    source: str  # zero_shot | budget_probe


def zero_shot_answers(
    x_budget: np.ndarray, x_target: np.ndarray, x_labels: np.ndarray, temperature: float
) -> OwnAnswers:
    """A sentence encoder's own answer: the label whose description embeds closest (cosine) to the
    text; confidence from a softmax of the similarities at `temperature`. Reads no label."""

    def answer(x: np.ndarray) -> np.ndarray:
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        names = x_labels / np.maximum(np.linalg.norm(x_labels, axis=1, keepdims=True), 1e-12)
        z = (unit @ names.T) / temperature
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return OwnAnswers(answer(x_budget), answer(x_target), "zero_shot")


def budget_probe_answers(
    x_budget: np.ndarray, y_budget: np.ndarray, x_target: np.ndarray, k: int, n_folds: int, C: float, seed: int
) -> OwnAnswers:
    """The ablation's "own" answer: a logistic head on strong embeddings fit on the budget's ground
    truth; on the budget, each row's answer comes from the head fit on the other folds."""
    head = logistic(x_budget, y_budget, k, C, seed)
    head_oof = out_of_fold(
        y_budget, k, n_folds, seed, lambda f, h: logistic(x_budget[f], y_budget[f], k, C, seed)(x_budget[h])
    )
    return OwnAnswers(head_oof, head(x_target), "budget_probe")


def gate_labels(
    x_budget: np.ndarray,
    y_budget: np.ndarray,
    weak_oof: np.ndarray,
    x_target: np.ndarray,
    weak_target: np.ndarray,
    own: OwnAnswers,
    gate: str,
    tau: float | None,
    n_folds: int,
    C: float,
    seed: int,
) -> GateResult:
    """Gate between the strong model's own answers and `weak_target` (the weak or smoothed labels).

    `gate` is "pik" (selective W2S: a probe trained on the budget to predict where the own answer
    is right) or "confidence" (the baseline: the own answer's confidence). `weak_oof` are the weak
    supervisor's out-of-fold probabilities on the budget, used only to choose `tau`.
    """
    if gate not in ("pik", "confidence"):
        raise ValueError(f"unknown gate '{gate}'")
    k = own.target.shape[1]
    right = own.budget.argmax(1) == y_budget

    if gate == "pik":
        pik = _pik(x_budget, own.budget, right, C, seed)
        score_target = pik(x_target, own.target)

        def pik_held_out(f: np.ndarray, h: np.ndarray) -> np.ndarray:
            p = _pik(x_budget[f], own.budget[f], right[f], C, seed)(x_budget[h], own.budget[h])
            return np.stack([1 - p, p], axis=1)

        # The probe's own out-of-fold scores on the budget, for an honest threshold choice.
        score_budget = out_of_fold(right.astype(np.int64), 2, n_folds, seed, pik_held_out)[:, 1]
    else:
        score_target, score_budget = own.target.max(1), own.budget.max(1)

    chosen = tau if tau is not None else choose_tau(score_budget, own.budget.argmax(1), weak_oof, y_budget)
    use_self = score_target >= chosen
    probs = np.where(use_self[:, None], np.eye(k)[own.target.argmax(1)], weak_target)
    info: dict[str, float | str | None] = {
        "gate": gate,
        "self_labels": own.source,
        "tau": None if not np.isfinite(chosen) else float(chosen),
        "tau_from": "config" if tau is not None else "weak budget (cross-fitted)",
        "head_oof_acc": float(right.mean()),
        "weak_oof_acc": float(np.mean(weak_oof.argmax(1) == y_budget)),
        "budget_self_label_frac": float(np.mean(score_budget >= chosen)),
    }
    return GateResult(probs, use_self, info)


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
    """The gate with the budget-probe self-labels (the ablation), from embeddings alone."""
    own = budget_probe_answers(x_budget, y_budget, x_target, k, n_folds, C, seed)
    return gate_labels(x_budget, y_budget, weak_oof, x_target, weak_target, own, gate, tau, n_folds, C, seed)


class SelectiveConfig(Section):
    self_labels: Literal["zero_shot", "budget_probe"] = Field(
        "zero_shot",
        description="The strong model's own answers: zero_shot (the paper's form: its own answer, read "
        "from no label; for a sentence encoder, the label whose description embeds closest to the "
        "text) or budget_probe (an ablation: a logistic head on strong embeddings fit on the weak "
        "budget's ground truth, a second supervisor rather than the model's own knowledge).",
    )
    label_descriptions: dict[str, str] = Field(
        default_factory=dict,
        description="zero_shot: the text each label is described by (label: text); a label not "
        "listed is described by its own name.",
    )
    temperature: float = Field(
        0.05,
        gt=0,
        description="zero_shot: softmax temperature over the cosine similarities, which gives the "
        "answer's confidence (the answer itself, the most similar label, does not depend on it).",
    )
    tau: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Gate threshold: self-label where P(IK) (or, for "
        "method=confidence, the own answer's confidence) is at least tau. None: chosen on the "
        "weak budget by cross-fitting (no other ground truth is read).",
    )
    smooth: bool = Field(False, description="Use graph-smoothed weak labels outside the gate.")
    folds: int = Field(5, ge=2, description="Cross-fitting folds on the weak budget.")
    C: float = Field(
        1.0, gt=0, description="Inverse L2 regularisation of the P(IK) probe (and of the budget_probe head)."
    )


def own_answers(inp: RefineInputs, c: SelectiveConfig, seed: int) -> OwnAnswers:
    """The strong model's own answers on the budget and the target rows, as `c` asks."""
    if c.self_labels == "budget_probe":
        return budget_probe_answers(
            inp.embed(inp.budget), inp.y_budget, inp.embed(inp.targets), inp.k, c.folds, c.C, seed
        )
    unknown = sorted(set(c.label_descriptions) - set(inp.label_names))
    if unknown:
        raise ConfigError(
            f"selective.label_descriptions names label(s) {unknown} the data does not have "
            f"({', '.join(inp.label_names)})"
        )
    if inp.strong_is_decoder():
        raise ConfigError(
            "selective.self_labels=zero_shot compares sentence embeddings, which a causal LM's "
            "last-token state is not: use an encoder strong model, or selective.self_labels=budget_probe"
        )
    descriptions = [c.label_descriptions.get(name, name) for name in inp.label_names]
    return zero_shot_answers(
        inp.embed(inp.budget), inp.embed(inp.targets), inp.embed_texts(descriptions), c.temperature
    )


class Gate(RefiningMethod):
    """A gate between the strong model's own answers and the weak labels; `gate` names the score."""

    gate = "pik"
    declared_metrics = (
        Metric("self_label_frac", "Fraction of transfer rows the gate gave the strong model's own label.", None),
        Metric("self_label_budget_acc", "Accuracy of the strong model's own answers on the weak budget (read "
               "without that row's label: zero-shot, or out of fold for budget_probe)."),
    )  # fmt: skip

    @property
    def settings(self) -> SelectiveConfig:
        return self.cfg.section("selective")

    def refine(self, inp: RefineInputs) -> Refined:
        c = self.settings
        base, info = inp.weak_probs, {}
        if c.smooth:
            base, smooth_info = smooth_inputs(inp, inp.weak_probs, self.cfg.section("smooth"))
            info.update({f"smooth_{k}": v for k, v in smooth_info.items()})
        result = gate_labels(
            inp.embed(inp.budget),
            inp.y_budget,
            inp.weak_oof(c.folds),
            inp.embed(inp.targets),
            base,
            own_answers(inp, c, self.cfg.seed),
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
        names = {"self_label_frac": "self_label_frac", "self_label_budget_acc": "head_oof_acc"}
        return {metric: info[key] for metric, key in names.items() if key in info}


class Selective(Gate):
    name = "selective"
    summary = "Selective W2S: the strong model's own labels where P(IK) passes the gate, weak elsewhere"
    Settings = SelectiveConfig
    reads = ("smooth",)


METHOD = Selective

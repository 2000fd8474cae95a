"""Every metric a run reports, declared once: its name, which way is better, whether it also
has an out-of-distribution twin (`<name>_ood`, on the `ood_test` split), whether sweeps average it
over seeds, whether a promotion floor may name it, and what it means.

Everything that lists metrics reads this table: the evaluation step (the per-split headline
metrics are computed from their `compute` functions, on test and on ood_test), the sweep
aggregation, the promotion floors, the metrics reference in the docs, and the test that checks
a run's `metrics.json` holds only declared names. A W2S method declares its own metrics on its
class (`Method.declared_metrics`); `w2s.methods.all_metrics()` adds them to these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from w2s.core.metrics import accuracy, agreement, auroc, clean, ece, pgr

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class SplitPredictions:
    """One evaluation split: the labels and each model's class probabilities on it."""

    y: np.ndarray
    weak: np.ndarray
    w2s: np.ndarray
    ceiling: np.ndarray
    budget: np.ndarray


@dataclass(frozen=True)
class Metric:
    """One reported number. `name` may end in `.*` for a family (`weight.<member>`)."""

    name: str
    help: str
    higher_is_better: bool | None = True  # None: a diagnostic with no better direction
    ood: bool = False  # also computed on ood_test, as <name>_ood
    aggregated: bool = True  # mean ± s.e. over seeds in a sweep
    floor: bool = False  # a promotion floor may name it
    # per split, from the labels and the models' probabilities (the headline metrics); None: the
    # step that owns the number computes it
    compute: Callable[[SplitPredictions], float | None] | None = None

    def matches(self, key: str) -> bool:
        """Whether a metrics.json key is this metric (or its OOD twin)."""
        names = [self.name, f"{self.name}_ood"] if self.ood else [self.name]
        if self.name.endswith(".*"):
            return key.startswith(self.name[:-1])
        return key in names


def _acc(which: str) -> Callable[[SplitPredictions], float | None]:
    def compute(p: SplitPredictions) -> float | None:
        return accuracy(getattr(p, which), p.y)

    return compute


def _auroc(which: str) -> Callable[[SplitPredictions], float | None]:
    def compute(p: SplitPredictions) -> float | None:
        return auroc(getattr(p, which), p.y)

    return compute


def _pgr(score: Callable[[str], Callable[[SplitPredictions], float | None]]) -> Callable[..., float | None]:
    def compute(p: SplitPredictions) -> float | None:
        return pgr(score("weak")(p), score("w2s")(p), score("ceiling")(p))

    return compute


def _agreement(part: str) -> Callable[[SplitPredictions], float | None]:
    def compute(p: SplitPredictions) -> float | None:
        return agreement(p.w2s.argmax(1), p.weak.argmax(1), p.y)[part]

    return compute


def _ece(p: SplitPredictions) -> float | None:
    return ece(p.w2s, p.y)


METRICS: tuple[Metric, ...] = (
    # headline, per evaluation split
    Metric("weak_acc", "Accuracy of the weak supervisor on test.", ood=True, floor=True, compute=_acc("weak")),
    Metric("ceiling_acc", "Accuracy of the strong model trained on transfer ground truth.", ood=True, floor=True,
           compute=_acc("ceiling")),
    Metric("w2s_acc", "Accuracy of the weak-to-strong student.", ood=True, floor=True, compute=_acc("w2s")),
    Metric("strong_budget_acc", "Accuracy of the strong model trained on the weak model's own ground-truth "
           "budget (weak_train): the baseline of spending the labels directly.", ood=True, floor=True,
           compute=_acc("budget")),
    Metric("weak_auroc", "AUROC of the weak supervisor (macro one-vs-rest for K > 2).", ood=True, floor=True,
           compute=_auroc("weak")),
    Metric("ceiling_auroc", "AUROC of the ceiling.", ood=True, floor=True, compute=_auroc("ceiling")),
    Metric("w2s_auroc", "AUROC of the student.", ood=True, floor=True, compute=_auroc("w2s")),
    Metric("strong_budget_auroc", "AUROC of the strong model trained on the weak budget.", compute=_auroc("budget")),
    Metric("pgr", "Performance gap recovered on accuracy, (w2s - weak) / (ceiling - weak); null when the gap is "
           "under eval.min_gap. Sweeps compute it from seed-averaged accuracies instead of averaging it.",
           ood=True, aggregated=False, floor=True, compute=_pgr(_acc)),
    Metric("pgr_auroc", "PGR on AUROC (EleutherAI's variant).", ood=True, aggregated=False, floor=True,
           compute=_pgr(_auroc)),
    Metric("agreement", "Fraction of test rows where the student predicts the supervisor's label.",
           higher_is_better=None, ood=True, floor=True, compute=_agreement("agreement")),
    Metric("agreement_weak_correct", "Agreement on the rows the supervisor gets right.", ood=True, floor=True,
           compute=_agreement("agreement_weak_correct")),
    Metric("agreement_weak_wrong", "Agreement on the rows the supervisor gets wrong (lower: the student "
           "corrects its supervisor).", higher_is_better=False, ood=True, floor=True,
           compute=_agreement("agreement_weak_wrong")),
    Metric("ece", "Expected calibration error of the student (10 equal-width bins).", higher_is_better=False,
           floor=True, compute=_ece),
    # the testbed's resolution
    Metric("n_test", "Rows in the test split.", higher_is_better=None, ood=True, aggregated=False),
    Metric("gap", "ceiling_acc - weak_acc.", ood=True),
    Metric("min_gap", "The smallest gap PGR is reported on (eval.min_gap; auto: 3 standard errors of a test "
           "accuracy).", higher_is_better=None, ood=True),
    # the student against the labels it trained on (Charikar et al. 2024)
    Metric("supervisor_acc", "Test accuracy of the model whose labels the student trained on (weak, refined or "
           "the last intermediate student)."),
    Metric("gain_over_labels", "w2s_acc - supervisor_acc.", floor=True),
    Metric("misfit", "Squared distance of the student's probabilities to its training labels, on weakly "
           "labelled val.", higher_is_better=None, floor=True),
    Metric("misfit_kl", "KL(labels || student) on weakly labelled val.", higher_is_better=None),
    Metric("actual_gain", "Test Brier score of the supervisor minus the student's: the gain `misfit` bounds.",
           floor=True),
    Metric("actual_gain_kl", "Test log loss of the supervisor minus the student's: the gain `misfit_kl` goes "
           "with."),
    Metric("gain_minus_misfit", "actual_gain - misfit: >= 0 where the misfit bound holds.", floor=True),
    # the labels the student learned from (diagnostics: transfer ground truth is never trained on)
    Metric("weak_transfer_acc", "Accuracy of the weak labels on transfer, against its ground truth."),
    Metric("labels_transfer_acc", "Accuracy of the student's training labels on transfer."),
    Metric("refined_acc", "Test accuracy of a refining method's supervisor.", ood=True),
    Metric("refined_auroc", "Test AUROC of a refining method's supervisor.", aggregated=False),
    Metric("changed_frac_transfer", "Fraction of transfer labels a refining method changed.",
           higher_is_better=None, aggregated=False),
    # training dynamics (read after training, never used to pick anything)
    # ground-truth val accuracy of the kept models: what a tuning rule reads (an oracle when it
    # picks settings, applied alike to the student and the budget baseline); no run reads it
    Metric("w2s_val_acc", "Ground-truth val accuracy of the student as kept (read after training, for tuning "
           "rules; never used by the run)."),
    Metric("strong_budget_val_acc", "Ground-truth val accuracy of the strong-on-budget baseline (the same use)."),
    Metric("student_steps", "Optimiser steps the student took.", higher_is_better=None),
    Metric("val_acc_last", "Ground-truth val accuracy of the student at its last evaluation."),
    Metric("val_acc_peak", "Its peak over training."),
    Metric("val_acc_weak_pick", "At the checkpoint weak-val early stopping keeps."),
    Metric("val_acc_decline", "Peak minus last.", higher_is_better=False),
    Metric("peak_epoch", "Epoch of the peak.", higher_is_better=None),
    Metric("flip_rate", "Prediction flip rate under the perturbation of method perturb.", higher_is_better=False),
    # weak-model selection (hindsight diagnostics, computed after the choice)
    Metric("selection_chosen_acc", "Test accuracy of the chosen candidate's probe student."),
    Metric("selection_best_acc", "The best candidate's, in hindsight."),
    Metric("selection_regret", "Best minus chosen.", higher_is_better=False),
)  # fmt: skip


def declared(key: str, metrics: tuple[Metric, ...] | None = None) -> bool:
    """Whether a metrics.json key is a declared metric (pass `w2s.methods.all_metrics()` to
    include the methods' own)."""
    return any(m.matches(key) for m in metrics or METRICS)


def split_metric_names(metrics: tuple[Metric, ...] | None = None) -> tuple[str, ...]:
    """The metrics computed per evaluation split, in order."""
    return tuple(m.name for m in metrics or METRICS if m.compute is not None)


def ood_names(metrics: tuple[Metric, ...] | None = None) -> tuple[str, ...]:
    """Metrics reported on ood_test too (as `<name>_ood`)."""
    return tuple(m.name for m in metrics or METRICS if m.ood)


def aggregated_names(metrics: tuple[Metric, ...] | None = None) -> tuple[str, ...]:
    """Metrics a sweep averages over seeds, with the OOD twins of those that have one."""
    out: list[str] = []
    for m in metrics or METRICS:
        if m.aggregated and not m.name.endswith(".*"):
            out += [m.name, f"{m.name}_ood"] if m.ood else [m.name]
    return tuple(out)


def floor_names(metrics: tuple[Metric, ...] | None = None) -> tuple[str, ...]:
    """Metrics a promotion floor may name."""
    return tuple(m.name for m in metrics or METRICS if m.floor)


def reference_table(metrics: tuple[Metric, ...] | None = None) -> str:
    """The metrics reference as a markdown table (docs/metrics.md is this, checked by a test)."""
    rows = [
        "| metric | better | also `_ood` | averaged over seeds | promotion floor | meaning |",
        "|---|---|---|---|---|---|",
    ]
    arrow = {True: "higher", False: "lower", None: "—"}
    for m in metrics or METRICS:
        flags = ["yes" if f else "" for f in (m.ood, m.aggregated, m.floor)]
        rows.append(f"| `{m.name}` | {arrow[m.higher_is_better]} | {' | '.join(flags)} | {m.help} |")
    return "\n".join(rows)


def split_metrics(preds: SplitPredictions) -> dict[str, float | None]:
    """Every per-split headline metric of `METRICS` on one evaluation split, under the
    contract's names."""
    return clean({m.name: m.compute(preds) for m in METRICS if m.compute is not None})

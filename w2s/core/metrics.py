"""Evaluation metrics of the W2S protocol (Burns et al. 2023; EleutherAI's AUROC variant)."""

from __future__ import annotations

import math

import numpy as np


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the label."""
    return float(np.mean(probs.argmax(1) == y))


def auroc(probs: np.ndarray, y: np.ndarray) -> float | None:
    """Binary AUROC on P(class 1); macro one-vs-rest over the classes present for K > 2."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return None
    if probs.shape[1] == 2:
        return float(roc_auc_score(y, probs[:, 1]))
    scores = [roc_auc_score(y == k, probs[:, k]) for k in present]
    return float(np.mean(scores))


def pgr(weak: float | None, strong: float | None, ceiling: float | None) -> float | None:
    """Performance gap recovered; None when undefined (ceiling <= weak or a missing input)."""
    if weak is None or strong is None or ceiling is None or ceiling <= weak:
        return None
    return float((strong - weak) / (ceiling - weak))


def agreement(student_pred: np.ndarray, weak_pred: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """How often the student predicts the supervisor's label: overall, and split by whether
    the supervisor was right (good W2S disagrees on the supervisor's mistakes)."""
    same = student_pred == weak_pred
    right = weak_pred == y

    def mean(mask: np.ndarray) -> float | None:
        return float(same[mask].mean()) if mask.any() else None

    return {
        "agreement": float(same.mean()),
        "agreement_weak_correct": mean(right),
        "agreement_weak_wrong": mean(~right),
    }


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence, equal-width bins."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(total)


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log probability of the true class (clipped at 1e-12)."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))


def brier(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean squared distance between predicted probabilities and one-hot labels."""
    onehot = np.eye(probs.shape[1])[y]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def misfit(student_probs: np.ndarray, weak_probs: np.ndarray) -> dict[str, float]:
    """How far the student ended from the weak labels it was trained on (Charikar et al. 2024):
    squared distance of the probability vectors, and KL(p_w || p_sw)."""
    sq = float(np.mean(np.sum((student_probs - weak_probs) ** 2, axis=1)))
    w = np.clip(weak_probs, 1e-12, 1.0)
    s = np.clip(student_probs, 1e-12, 1.0)
    kl = float(np.mean(np.sum(weak_probs * (np.log(w) - np.log(s)), axis=1)))
    return {"misfit": sq, "misfit_kl": kl}


def clean(metrics: dict[str, float | None]) -> dict[str, float | None]:
    """Replace NaN/inf by None so JSON holds `null` for undefined numbers."""
    return {
        k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v) for k, v in metrics.items()
    }


def gain_over_labels(
    y: np.ndarray,
    supervisor_probs: np.ndarray,
    student_probs: np.ndarray,
    fit_labels: np.ndarray,
    fit_student: np.ndarray,
) -> dict[str, float | None]:
    """How the student relates to the labels it actually trained on (Charikar et al. 2024).

    `supervisor_probs`: on the test rows, the model whose labels the student learned (the weak
    model, a refined supervisor, or the last intermediate student). `fit_labels` and
    `fit_student`: those labels and the student's predictions on held-out weakly labelled rows
    (val), where the misfit is measured.

    - `supervisor_acc`, `gain_over_labels`: test accuracy of that supervisor and the student's
      gain over it (a sharpening or refining method can raise w2s_acc by raising this baseline);
    - `misfit`, `misfit_kl`: squared distance and KL from the labels to the student on val;
    - `actual_gain`: test Brier score of the supervisor minus that of the student (the squared
      error the theorem's `misfit` bounds);
    - `actual_gain_kl`: test log loss of the supervisor minus that of the student (the KL
      analogue's gain, which goes with `misfit_kl`);
    - `gain_minus_misfit`: actual_gain - misfit. The theorem bounds the gain from below by the
      misfit (for a convex student class containing the target), so it is >= 0 where it holds.
    """
    out: dict[str, float | None] = {"supervisor_acc": accuracy(supervisor_probs, y)}
    out["gain_over_labels"] = accuracy(student_probs, y) - accuracy(supervisor_probs, y)
    out.update(misfit(fit_student, fit_labels))
    out["actual_gain"] = brier(supervisor_probs, y) - brier(student_probs, y)
    out["actual_gain_kl"] = log_loss(supervisor_probs, y) - log_loss(student_probs, y)
    out["gain_minus_misfit"] = out["actual_gain"] - out["misfit"]  # type: ignore[operator]
    return clean(out)


def curve_diagnostics(curve: list[dict[str, float]]) -> dict[str, float | None]:
    """What a student's training curve says about "correct first, imitate later" (diagnostics
    read after training, never used to pick anything): ground-truth val accuracy at the last
    evaluation, at its peak, and at the checkpoint weak-val early stopping keeps (the first peak
    of agreement with the weak labels); the decline from the peak to the end; the peak's epoch."""
    points = [p for p in curve if p.get("val_gt_acc") is not None]
    if not points:
        return {}
    gt = [float(p["val_gt_acc"]) for p in points]
    peak = int(np.argmax(gt))
    out: dict[str, float | None] = {
        "val_acc_last": gt[-1],
        "val_acc_peak": gt[peak],
        "val_acc_decline": gt[peak] - gt[-1],
        "peak_epoch": float(points[peak]["epoch"]),
    }
    weak = [p.get("val_weak_acc") for p in points]
    if all(w is not None for w in weak):
        out["val_acc_weak_pick"] = gt[int(np.argmax(np.asarray(weak, dtype=float)))]
    return out

"""Choosing among weak supervisors by the strong error they predict (Charikar et al. 2024).

For each candidate: `Err_w` is its cross-validated squared error on the weak budget (ground truth
it already had); a student fit to its weak labels gives `Misfit` on the held-out, weakly labelled
val split (on the student's own training rows it would be biased low); the predicted strong error
is `Err_w - Misfit`. The candidate with the lowest prediction wins. No transfer or val ground
truth is read: the splits are passed with those labels removed.

After the choice, and never feeding it, each probe student's test accuracy is looked up: the
`selection_regret` metric is how far the chosen candidate's probe falls behind the best one in
hindsight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.core.config import WeakConfig
from w2s.core.cross_fit import weak_oof_probs
from w2s.core.data.split import encode_labels, without_transfer_truth
from w2s.core.metrics import accuracy, misfit
from w2s.core.refs import LabelsRef, ModelRef, SplitsRef, TableRef, split_part
from w2s.io import atomic_path
from w2s.pipeline import predictions, weak_model
from w2s.pipeline.publish import Publisher, record_beside
from w2s.pipeline.strong import StudentRun, train_strong


@dataclass(frozen=True)
class Candidate:
    """One weak supervisor's numbers in the selection table."""

    name: str
    err_w: float
    misfit: float
    predicted_err: float
    hindsight_acc: float  # the probe student's test accuracy: read after the choice, never by it
    weak: ModelRef
    student: ModelRef
    labels_md5: str

    def row(self) -> dict[str, Any]:
        return {
            "candidate": self.name,
            "err_w_cv": self.err_w,
            "misfit": self.misfit,
            "predicted_strong_err": self.predicted_err,
            "probe_test_acc_hindsight": self.hindsight_acc,
            "weak_labels_md5": self.labels_md5,
        }


def cv_err(train: pd.DataFrame, names: list[str], weak: WeakConfig, seed: int, folds: int) -> float:
    """K-fold cross-validated Brier error of a weak config on its own ground-truth budget."""
    y = encode_labels(train["label"], names)
    probs = weak_oof_probs(train["text"].tolist(), y, len(names), weak, seed, folds)
    return float(np.sum((probs - np.eye(len(names))[y]) ** 2, axis=1).mean())


@dataclass(frozen=True)
class Selection:
    """The outcome of weak-model selection: the chosen candidate and every candidate's row."""

    chosen: str
    candidates: list[dict[str, Any]]

    def metrics(self) -> dict[str, float | None]:
        """The chosen probe's test accuracy, the best one's in hindsight, and the regret."""
        accs = {r["candidate"]: r["probe_test_acc_hindsight"] for r in self.candidates}
        best = max(accs.values())
        return {
            "selection_chosen_acc": accs[self.chosen],
            "selection_best_acc": best,
            "selection_regret": best - accs[self.chosen],
        }

    def apply(self, cfg: Config) -> Config:
        """The config with the chosen candidate as its weak supervisor."""
        return cfg.model_copy(update={"weak": cfg.selection.candidates[self.chosen]})


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the lowest predicted strong error (the first one on ties)."""
    return min(candidates, key=lambda c: c.predicted_err)


def select_weak(splits_ref: SplitsRef, table: TableRef, cfg: Config, cache: ArtifactCache, out_dir: Path) -> Selection:
    """Evaluate every configured candidate; return the winner and the full table."""
    results = evaluate_candidates(splits_ref, table, cfg, cache, out_dir)
    return Selection(choose(results).name, [c.row() for c in results])


def evaluate_candidates(
    splits_ref: SplitsRef, table: TableRef, cfg: Config, cache: ArtifactCache, out_dir: Path
) -> list[Candidate]:
    """Every configured candidate's weak model, probe student, Err_w and misfit."""
    sel = cfg.selection
    splits = pd.read_parquet(splits_ref.path)
    blind_path = out_dir / "splits-blind.parquet"
    with atomic_path(blind_path) as tmp:
        without_transfer_truth(splits).to_parquet(tmp, index=False)
    blind = SplitsRef(str(blind_path), splits_ref.md5 + "-blind", splits_ref.label_names, splits_ref.counts)
    train = split_part(splits, "weak_train")
    student_cfg = cfg.strong.model_copy(update={"mode": sel.student_mode})
    # the candidates' labels are scratch: kept in the run folder, never versioned
    publish = Publisher(blind, table, out_dir, record_beside(out_dir))
    results = []
    for name, weak_cfg in sel.candidates.items():
        ccfg = cfg.model_copy(update={"weak": weak_cfg, "strong": student_cfg})
        weak = weak_model.train_weak(blind, ccfg, cache)
        labels = publish(weak, f"candidate-{name}")
        student = _student(blind, ccfg, cache, labels)
        val = split_part(splits, "val")["id"]
        fit = misfit(
            predictions.aligned_probs(predictions.predictions(student, "val"), val, "student"),
            predictions.aligned_probs(predictions.predictions(weak, "val"), val, "weak"),
        )["misfit"]
        err_w = cv_err(train, splits_ref.label_names, weak_cfg, cfg.seed, sel.folds)
        test = split_part(splits, "test")
        probe = predictions.aligned_probs(predictions.predictions(student, "test"), test["id"], "student")
        hindsight = accuracy(probe, encode_labels(test["label"], splits_ref.label_names))
        results.append(Candidate(name, err_w, fit, err_w - fit, hindsight, weak, student, labels.md5))
    return results


def _student(blind: SplitsRef, cfg: Config, cache: ArtifactCache, labels: LabelsRef) -> ModelRef:
    # The student's val selection reads only weak labels (weak_val); the blind splits carry no
    # val truth, so ground-truth stopping is refused rather than silently reading None labels.
    if cfg.strong.early_stopping == "oracle":
        raise ValueError("weak-model selection cannot use oracle early stopping")
    return train_strong(blind, StudentRun(cfg, labels), cache)  # a plain student: no method hooks

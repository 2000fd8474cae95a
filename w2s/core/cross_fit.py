"""Cross-fitting on the weak budget: out-of-fold predictions, so a model's memorised training
labels never stand in for its behaviour on unseen data."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from w2s.core.config import WeakConfig


def folds(y: np.ndarray, n_folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(fit, held-out) index pairs; stratified when every class has at least `n_folds` rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    stratify = np.bincount(y).min() >= n_folds if len(y) else False
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
    yield from splitter.split(np.zeros(len(y)), y)


def out_of_fold(
    y: np.ndarray, k: int, n_folds: int, seed: int, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Probabilities (N x k) for every row from a model fit on the other folds.

    `fit_predict(fit_idx, held_idx)` trains on `fit_idx` and returns probabilities for `held_idx`.
    """
    out = np.zeros((len(y), k))
    for fit_idx, held_idx in folds(y, n_folds, seed):
        out[held_idx] = fit_predict(fit_idx, held_idx)
    return out


def weak_oof_probs(texts: list[str], y: np.ndarray, k: int, weak: WeakConfig, seed: int, n_folds: int) -> np.ndarray:
    """Out-of-fold probabilities of a weak supervisor config on its own ground-truth budget."""
    from w2s.core.models.weak import WEAK_TRAINERS

    def fit_predict(fit_idx: np.ndarray, held_idx: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            predict = WEAK_TRAINERS[weak.kind]([texts[i] for i in fit_idx], y[fit_idx], k, weak, seed, Path(tmp))
            return predict([texts[i] for i in held_idx])

    return out_of_fold(y, k, n_folds, seed, fit_predict)


def logistic(x: np.ndarray, y: np.ndarray, k: int, C: float, seed: int):
    """A fitted L2 logistic regression whose `predict` gives (N x k) probabilities over all k
    classes, even when the fit data lacked some of them."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(y)
    if len(present) == 1:
        const = np.zeros(k)
        const[present[0]] = 1.0
        return lambda z: np.tile(const, (len(z), 1))
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x, y)

    def predict(z: np.ndarray) -> np.ndarray:
        out = np.zeros((len(z), k))
        out[:, model.classes_] = model.predict_proba(z)
        return out

    return predict

"""Reading a model entry's predictions: one split, or several aligned to their ids (a mismatch
of ids is an error, never assumed away)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from w2s.core.refs import (
    ModelRef,
)
from w2s.errors import DataError
from w2s.pipeline.labels import (
    read_predictions,
)


def predictions(ref: ModelRef, split: str) -> pd.DataFrame:
    """The `id, split, probs` predictions a model entry holds for one split."""
    preds = read_predictions(Path(ref.dir) / "preds.parquet")
    return preds[preds["split"] == split].reset_index(drop=True)


def split_probs(ref: ModelRef, wanted: dict[str, pd.Series]) -> dict[str, np.ndarray]:
    """Probabilities of several splits, aligned to their ids, from one read of the entry."""
    preds = read_predictions(Path(ref.dir) / "preds.parquet")
    return {
        name: aligned_probs(preds[preds["split"] == name].reset_index(drop=True), ids, f"{ref.kind} {name} predictions")
        for name, ids in wanted.items()
    }


def aligned_probs(preds: pd.DataFrame, ids: pd.Series, what: str) -> np.ndarray:
    """Probabilities in the order of `ids`; a mismatch of ids is an error, never assumed away."""
    if list(preds["id"]) != list(ids):
        raise DataError(f"{what}: prediction ids do not match the split's ids")
    return np.stack(preds["probs"].to_numpy())

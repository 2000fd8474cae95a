"""Prediction tables and the weak-label dataset, whose schema is a public contract (README, "The pipeline").

Weak-label Parquet: `id, text, weak_probs, weak_label, split`, one row per transfer and val
example, ids asserted against the source table; a sidecar JSON names the weak model and hashes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.errors import DataError
from w2s.io import atomic_path, file_md5, write_json

LABEL_SPLITS = ("transfer", "val")


def write_predictions(path: Path, ids: pd.Series, splits: pd.Series, probs: np.ndarray) -> None:
    """Store per-example class probabilities as Parquet (`id, split, probs`)."""
    if len(ids) != len(probs):
        raise ValueError(f"{len(ids)} ids but {len(probs)} prediction rows")
    df = pd.DataFrame(
        {"id": ids.to_numpy(), "split": splits.to_numpy(), "probs": [row.astype(np.float64).tolist() for row in probs]}
    )
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def build_weak_labels(splits: pd.DataFrame, weak_preds: pd.DataFrame, where: str = "weak predictions") -> pd.DataFrame:
    """Join weak predictions onto the transfer and val rows, checking that every id matches.

    `where` names the predictions (their file) in the error raised on a mismatch.
    """
    rows = splits[splits["split"].isin(LABEL_SPLITS)].reset_index(drop=True)
    preds = weak_preds[weak_preds["split"].isin(LABEL_SPLITS)].reset_index(drop=True)
    if list(rows["id"]) != list(preds["id"]) or list(rows["split"]) != list(preds["split"]):
        raise DataError(
            f"{where}: weak-label ids do not match the transfer/val ids of the source "
            f"table: {_first_mismatch(rows, preds)}"
        )
    probs = [np.asarray(p, dtype=np.float64) for p in preds["probs"]]
    return pd.DataFrame(
        {
            "id": rows["id"],
            "text": rows["text"],
            "weak_probs": [p.tolist() for p in probs],
            "weak_label": [int(np.argmax(p)) for p in probs],
            "split": rows["split"],
        }
    )


def _first_mismatch(rows: pd.DataFrame, preds: pd.DataFrame) -> str:
    want_rows = list(zip(rows["split"], rows["id"], strict=True))
    got_rows = list(zip(preds["split"], preds["id"], strict=True))
    for i, (want, got) in enumerate(zip(want_rows, got_rows, strict=False)):  # lengths may differ
        if want != got:
            return f"row {i + 1} is {want[0]} id {want[1]!r} in the source but {got[0]} id {got[1]!r} here"
    return f"the source has {len(rows)} transfer/val rows, the predictions {len(preds)}"


def add_member_probs(labels: pd.DataFrame, teachers: pd.DataFrame) -> pd.DataFrame:
    """Attach each ensemble member's probabilities (`member_probs`, M x K per row) by id."""
    by_id = teachers.set_index("id")["member_probs"]
    if not labels["id"].isin(by_id.index).all():
        raise DataError("ensemble member predictions lack some weak-label ids")
    out = labels.copy()
    out["member_probs"] = [np.stack(m).tolist() for m in by_id.loc[labels["id"]].to_numpy()]
    return out


def write_weak_labels(labels: pd.DataFrame, path: Path, sidecar: dict[str, Any]) -> str:
    """Write the Parquet file and its sidecar JSON; return the Parquet md5.

    Two files cannot be replaced in one step, so the order keeps one invariant through any
    interruption: a sidecar that exists names the md5 of the Parquet file beside it. The old
    sidecar goes first, then the Parquet file is replaced (atomically), and the new sidecar is
    written last (atomically); an interrupted rewrite leaves a label file without a sidecar,
    never one with a sidecar that describes other bytes."""
    with atomic_path(path) as tmp:
        labels.to_parquet(tmp, index=False)
        md5 = file_md5(tmp)
        path.with_suffix(".json").unlink(missing_ok=True)
    write_json(path.with_suffix(".json"), {**sidecar, "md5": md5, "rows": len(labels)})
    return md5


def read_weak_labels(path: Path) -> pd.DataFrame:
    """Load a weak-label file, checking its columns."""
    df = pd.read_parquet(path)
    missing = {"id", "text", "weak_probs", "weak_label", "split"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: weak-label file lacks column(s) {sorted(missing)}")
    return df

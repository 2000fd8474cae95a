"""References passed between pipeline steps: paths, hashes and small metadata, never objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from w2s.errors import DataError

# Bump a step's version when its code changes what it produces: old cache entries then miss.
WEAK_VERSION = "weak-2"
STRONG_VERSION = "strong-5"
LABELS_VERSION = "labels-1"

# The splits every trained supervisor and student predicts (ood_test only exists under shift).
PREDICT_SPLITS = ("transfer", "val", "test", "ood_test")
# A weak ensemble's entry also holds each member's probabilities (`id, split, member_probs`).
TEACHERS_FILE = "teachers.parquet"


@dataclass(frozen=True)
class TableRef:
    """The canonical table on disk and what identifies it."""

    path: str
    data_md5: str
    label_names: list[str]
    rows: int
    source: dict[str, Any]
    stats: dict[str, int]


@dataclass(frozen=True)
class SplitsRef:
    """The split table (`split` column added) and its content hash."""

    path: str
    md5: str
    label_names: list[str]
    counts: dict[str, int]


@dataclass(frozen=True)
class ModelRef:
    """A cache entry holding a trained model and its predictions."""

    kind: str
    dir: str
    key: str
    reused: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelsRef:
    """A published label file in the weak-label schema (what a student trains on) and its
    identity: the sidecar JSON beside the Parquet file holds the same fields."""

    path: str
    md5: str
    label_names: list[str]
    supervisor: dict[str, Any]  # kind and cache key of the model whose predictions these are
    data_md5: str
    splits_md5: str
    counts: dict[str, int]
    members: list[str] | None = None  # a weak ensemble's member names (`member_probs` column)
    dvc: dict[str, Any] | None = None  # the DVC record once versioned: path, md5, dvc_file, remote

    def sidecar(self) -> dict[str, Any]:
        """The sidecar JSON's content (schema, names, supervisor, hashes, counts)."""
        out: dict[str, Any] = {
            "schema": LABELS_VERSION,
            "label_names": self.label_names,
            "weak_model": self.supervisor,
            "data_md5": self.data_md5,
            "splits_md5": self.splits_md5,
            "counts": self.counts,
        }
        if self.members is not None:
            out["members"] = self.members
        return out


def split_part(splits: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one split; an empty split is a data error."""
    part = splits[splits["split"] == name]
    if part.empty:
        raise DataError(f"split '{name}' is empty")
    return part

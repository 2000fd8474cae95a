"""The weak supervisor: trained on its ground-truth budget (weak_train), or a stratified fraction
of it, through the content-addressed cache; it predicts transfer, val, test and ood_test."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache, cache_key
from w2s.core.data.sources import table_md5
from w2s.core.data.split import (
    encode_labels,
    stratified_take,
)
from w2s.core.refs import (
    PREDICT_SPLITS,
    WEAK_VERSION,
    ModelRef,
    SplitsRef,
    split_part,
)
from w2s.errors import DataError
from w2s.io import read_json, write_json
from w2s.pipeline.labels import (
    write_predictions,
)


def _rows_hash(df: pd.DataFrame, with_labels: bool) -> str:
    return table_md5(df, ["id", "text", "label"] if with_labels else ["id", "text"])


def budget_subset(train_df: pd.DataFrame, frac: float, seed: int) -> pd.DataFrame:
    """A deterministic, class-stratified fraction of the weak budget (at least one per class)."""
    n = max(int(round(frac * len(train_df))), train_df["label"].nunique())
    idx = stratified_take(train_df["label"].to_numpy(), min(n, len(train_df)), np.random.default_rng(seed))
    return train_df.iloc[idx]


def train_weak(
    splits_ref: SplitsRef,
    cfg: Config,
    cache: ArtifactCache,
    subset: tuple[float, int] | None = None,
    groups: tuple[str, ...] = (),
) -> ModelRef:
    """Train the weak supervisor on weak_train ground truth (or on its rows of `groups`, and/or a
    `(fraction, seed)` subset of it); predict transfer, val, test and ood_test."""
    from w2s.core.models.weak import WEAK_TRAINERS

    splits = pd.read_parquet(splits_ref.path)
    train_df = split_part(splits, "weak_train")
    if groups:
        train_df = train_df[train_df["group"].isin(groups)]
        if train_df.empty:
            raise DataError(f"no weak_train row is in the group(s) {list(groups)}")
    if subset is not None and subset[0] < 1:
        train_df = budget_subset(train_df, *subset)
    targets = splits[splits["split"].isin(PREDICT_SPLITS)]
    spec = {
        "version": WEAK_VERSION,
        "weak": cfg.weak.model_dump(mode="json"),
        "seed": cfg.seed,
        "labels": splits_ref.label_names,
        "train": _rows_hash(train_df, True),
        "predict": _rows_hash(targets, False),
    }
    key = cache_key("weak", spec)
    hit = cache.lookup("weak", key)
    if hit is not None:
        return ModelRef("weak", str(hit), key, True, read_json(hit / "info.json"))
    names = splits_ref.label_names
    y = encode_labels(train_df["label"], names)
    start = time.perf_counter()
    with cache.build("weak", key, spec) as folder:
        predict = WEAK_TRAINERS[cfg.weak.kind](train_df["text"].tolist(), y, len(names), cfg.weak, cfg.seed, folder)
        probs = predict(targets["text"].tolist())
        write_predictions(folder / "preds.parquet", targets["id"], targets["split"], probs)
        info = {
            "kind": cfg.weak.kind,
            "train_examples": len(train_df),
            "seconds": round(time.perf_counter() - start, 2),
        }
        write_json(folder / "info.json", info)
    return ModelRef("weak", str(cache.path("weak", key)), key, False, info)

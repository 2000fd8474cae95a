"""Cross-fitted students: labels for the transfer split that no student fit in-sample.

K students of one config each train on the transfer rows outside one fold (folds by a hash of the
row id) and predict that fold out of sample. The combined entry holds, for every transfer row, the
prediction of the student that never saw it, and for val, test and ood_test the mean of the K
students' probabilities. It is cached under a key made of the K students' keys, shaped like any
supervisor's entry (`preds.parquet` + `info.json`), so it publishes like one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache, cache_key
from w2s.core.data.split import hash_folds
from w2s.core.refs import PREDICT_SPLITS, LabelsRef, ModelRef, SplitsRef, split_part
from w2s.io import read_json, write_json
from w2s.pipeline import predictions
from w2s.pipeline.labels import write_predictions
from w2s.pipeline.strong import StudentRun, train_strong

CROSSFIT_VERSION = "crossfit-1"


def train_cross_fitted(
    splits_ref: SplitsRef, cfg: Config, labels: LabelsRef, n_folds: int, cache: ArtifactCache
) -> ModelRef:
    """Train (or reuse) `n_folds` fold students of `cfg.strong` on `labels`; return the combined
    supervisor whose transfer predictions are all out of sample."""
    if n_folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {n_folds}")
    folds = [train_strong(splits_ref, StudentRun(cfg, labels, fold=(k, n_folds)), cache) for k in range(n_folds)]
    spec = {"version": CROSSFIT_VERSION, "folds": [f.key for f in folds]}
    key = cache_key("crossfit", spec)
    hit = cache.lookup("crossfit", key)
    if hit is not None:
        return ModelRef("crossfit", str(hit), key, True, read_json(hit / "info.json"))
    splits = pd.read_parquet(splits_ref.path)
    transfer = split_part(splits, "transfer")
    fold_of = hash_folds(transfer["id"], n_folds, f"crossfit-{cfg.seed}")
    rows = splits[splits["split"].isin(PREDICT_SPLITS)].reset_index(drop=True)
    probs = np.zeros((len(rows), len(splits_ref.label_names)))
    wanted = {name: rows.loc[rows["split"] == name, "id"] for name in rows["split"].unique()}
    per_fold = [predictions.split_probs(f, wanted) for f in folds]  # one read of each fold's predictions
    for name, ids in wanted.items():
        at = (rows["split"] == name).to_numpy()
        stacked = np.stack([fold[name] for fold in per_fold])
        if name == "transfer":
            # each row from the one student that did not train on it (fold_of follows transfer's order)
            probs[at] = stacked[fold_of, np.arange(len(ids))]
        else:
            probs[at] = stacked.mean(axis=0)
    info = {
        "kind": f"cross-fitted student ({n_folds} folds)",
        "folds": n_folds,
        "fold_keys": [f.key for f in folds],
        "fold_sizes": [int((fold_of == k).sum()) for k in range(n_folds)],
        "steps": [f.info.get("steps") for f in folds],
    }
    with cache.build("crossfit", key, spec) as folder:
        write_predictions(Path(folder) / "preds.parquet", rows["id"], rows["split"], probs)
        write_json(Path(folder) / "info.json", info)
    return ModelRef("crossfit", str(cache.path("crossfit", key)), key, False, info)

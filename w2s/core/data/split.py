"""Deterministic splits: weak_train (stratified by class), transfer, val, test.

Splits are drawn over items (`w2s.core.data.items`): the rows of one source item always land in
the same split. For unpaired data an item is a row, and the draws are the row draws exactly.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from w2s.core.config import SplitConfig
from w2s.core.data import items
from w2s.errors import DataError

SPLITS = ("weak_train", "transfer", "val", "test", "ood_test")
log = logging.getLogger(__name__)


def label_names(table: pd.DataFrame, declared: list[str] | None) -> list[str]:
    """The class names in index order: the declared set, else the sorted observed labels."""
    if declared:
        return list(declared)
    return sorted(table["label"].dropna().unique().tolist())


def stratified_take(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n` rows with every class represented in proportion (at least one each)."""
    classes, counts = np.unique(labels, return_counts=True)
    if n < len(classes):
        raise DataError(f"split.weak_train={n} is smaller than the number of classes ({len(classes)})")
    raw = counts / counts.sum() * n
    quota = np.maximum(1, np.floor(raw)).astype(int)
    for i in np.argsort(-(raw - np.floor(raw))):
        if quota.sum() >= n:
            break
        quota[i] += 1
    while quota.sum() > n:  # the at-least-one floor can overshoot: trim the largest
        quota[np.argmax(quota)] -= 1
    picked = []
    for cls, q in zip(classes, quota, strict=True):
        members = np.flatnonzero(labels == cls)
        picked.append(rng.choice(members, size=min(q, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def _hold_out(table: pd.DataFrame, cfg: SplitConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the rows of the held-out groups: (in-distribution rows, ood_test rows)."""
    groups = table["group"]
    unknown = sorted(set(cfg.ood_groups) - set(groups.dropna().unique()))
    if unknown:
        raise DataError(f"split.ood_groups names group(s) absent from the data's groups (data.group_column): {unknown}")
    codes = items.item_codes(table)
    # An item with any row in a held-out group is held out whole, so it cannot straddle ood_test.
    pool = np.unique(codes[groups.isin(cfg.ood_groups).to_numpy()])
    held = np.isin(codes, pool)
    if held.sum() < cfg.ood_test:
        raise DataError(f"split.ood_test={cfg.ood_test} but the held-out groups have {int(held.sum())} rows")
    size = min(items.items_for(cfg.ood_test, len(pool), int(held.sum())), len(pool))
    ood = table.iloc[items.rows_of(codes, rng.choice(pool, size=size, replace=False))].copy()
    ood["split"] = "ood_test"
    return table[~held].reset_index(drop=True), ood


SIZED = ("weak_train", "transfer", "val", "test")


def _listed(sizes: dict[str, int]) -> str:
    return " + ".join(f"{name} {n}" for name, n in sizes.items())


def split_sizes(cfg: SplitConfig, rows: int, pool: str = "the data", names: tuple[str, ...] = SIZED) -> dict[str, int]:
    """Rows of each split of `names` for a pool of `rows` rows: a fraction of the pool, or a count.
    Counts that need more rows than the pool has are scaled down in proportion, with a warning,
    when `split.scale_to_fit` (else, and when the scaled test split falls below `split.min_test`,
    a `DataError` says what is missing)."""
    sizes = {name: int(v * rows) if isinstance(v, float) else v for name, v in ((n, getattr(cfg, n)) for n in names)}
    need = sum(sizes.values())
    if need <= rows:
        return sizes
    asked = f"the split sizes need {need} rows ({_listed(sizes)}) but {pool} has {rows} rows"
    if not cfg.scale_to_fit:
        raise DataError(asked)
    scaled = {name: max(2, n * rows // need) for name, n in sizes.items()}
    if scaled.get("test", cfg.min_test) < cfg.min_test:
        raise DataError(
            f"{asked}; scaled to fit, test would hold {scaled['test']} rows, below split.min_test={cfg.min_test}"
        )
    log.warning("%s: scaled to fit (split.scale_to_fit): %s", asked, _listed(scaled))
    return scaled


def assign_splits(table: pd.DataFrame, cfg: SplitConfig, seed: int) -> pd.DataFrame:
    """Return the rows used by the experiment with a `split` column; same seed, same splits.

    With `ood_groups`, those groups' rows are set aside first (a sample of them is `ood_test`)
    and every other split is drawn from the remaining groups only. With `source_groups`,
    weak_train is drawn from those groups' rows and transfer, val and test from the other
    groups' (a weak supervisor trained on a shifted source). Paired data is split by item: a
    split of n rows takes the whole items that hold about n rows (exactly n for pairs and an
    even n), and weak_train is stratified by each item's label set.
    """
    rng = np.random.default_rng(seed)
    ood = None
    if cfg.ood_groups:
        table, ood = _hold_out(table, cfg, np.random.default_rng([seed, 1]))
    parts = _source_shift_parts(table, cfg, rng) if cfg.source_groups else _parts(table, cfg, rng)
    if ood is not None:
        parts.append(ood)
    return pd.concat(parts, ignore_index=True)


def _named(table: pd.DataFrame, codes: np.ndarray, chosen: np.ndarray, name: str) -> pd.DataFrame:
    """The rows of the chosen items, with the split's name."""
    part = table.iloc[items.rows_of(codes, chosen)].copy()
    part["split"] = name
    return part


def _parts(table: pd.DataFrame, cfg: SplitConfig, rng: np.random.Generator) -> list[pd.DataFrame]:
    """The four splits drawn from one pool: weak_train stratified, the rest a permutation."""
    pool = "the data outside split.ood_groups" if cfg.ood_groups else "the data"
    sizes = split_sizes(cfg, len(table), pool)
    need = sum(sizes.values())
    codes = items.item_codes(table)
    n_items = items.item_count(codes)
    weak_n, test_n, val_n, transfer_n = (
        items.items_for(sizes[name], n_items, len(table)) for name in ("weak_train", "test", "val", "transfer")
    )
    if weak_n + test_n + val_n + transfer_n > n_items:  # only paired data rounds up to whole items
        raise DataError(
            f"the split sizes need {need} rows ({_listed(sizes)}), i.e. {weak_n + test_n + val_n + transfer_n} "
            f"whole items, but {pool} has {n_items} items ({len(table)} rows)"
        )
    weak = stratified_take(items.item_strata(table["label"].to_numpy(), codes), weak_n, rng)
    rest = rng.permutation(np.setdiff1d(np.arange(n_items), weak))
    cuts = np.cumsum([test_n, val_n, transfer_n])
    test, val, transfer = rest[: cuts[0]], rest[cuts[0] : cuts[1]], rest[cuts[1] : cuts[2]]
    chosen = (("weak_train", weak), ("transfer", transfer), ("val", val), ("test", test))
    return [_named(table, codes, rows, name) for name, rows in chosen]


def _source_shift_parts(table: pd.DataFrame, cfg: SplitConfig, rng: np.random.Generator) -> list[pd.DataFrame]:
    """weak_train from the source groups' items; transfer, val and test from the other items."""
    groups = table["group"]
    unknown = sorted(set(cfg.source_groups) - set(groups.dropna().unique()))
    if unknown:
        raise DataError(f"split.source_groups names group(s) absent from the data's `group` column: {unknown}")
    codes = items.item_codes(table)
    # An item with any row in a source group is a source item, so no item straddles the two pools.
    is_source = np.isin(codes, np.unique(codes[groups.isin(cfg.source_groups).to_numpy()]))
    source, target = table[is_source].reset_index(drop=True), table[~is_source].reset_index(drop=True)
    if target.empty:
        raise DataError("split.source_groups covers every group: no target rows are left for transfer, val and test")
    weak_size = split_sizes(cfg, len(source), "the data in split.source_groups", ("weak_train",))
    sizes = split_sizes(cfg, len(target), "the target data (outside split.source_groups)", ("transfer", "val", "test"))
    s_codes, t_codes = items.item_codes(source), items.item_codes(target)
    weak_n = items.items_for(weak_size["weak_train"], items.item_count(s_codes), len(source))
    test_n, val_n, transfer_n = (
        items.items_for(sizes[name], items.item_count(t_codes), len(target)) for name in ("test", "val", "transfer")
    )
    if test_n + val_n + transfer_n > items.item_count(t_codes):
        raise DataError(
            f"the target splits need {_listed(sizes)} rows but the target data has {len(target)} rows "
            f"({items.item_count(t_codes)} items)"
        )
    weak = stratified_take(items.item_strata(source["label"].to_numpy(), s_codes), weak_n, rng)
    rest = rng.permutation(items.item_count(t_codes))
    cuts = np.cumsum([test_n, val_n, transfer_n])
    test, val, transfer = rest[: cuts[0]], rest[cuts[0] : cuts[1]], rest[cuts[1] : cuts[2]]
    target_parts = [
        _named(target, t_codes, rows, name) for name, rows in (("transfer", transfer), ("val", val), ("test", test))
    ]
    return [_named(source, s_codes, weak, "weak_train"), *target_parts]


def encode_labels(labels: pd.Series, names: list[str]) -> np.ndarray:
    """Class indices for label strings; validation has already rejected unknown labels."""
    index = {n: i for i, n in enumerate(names)}
    return labels.map(index).to_numpy(dtype=np.int64)


def without_transfer_truth(splits: pd.DataFrame) -> pd.DataFrame:
    """The splits with every label outside weak_train removed ("blind"): what weak-model selection
    and label refinement see, so no transfer, val or test ground truth can reach them."""
    blind = splits.copy()
    blind.loc[blind["split"] != "weak_train", "label"] = None
    return blind


def hash_folds(ids: pd.Series, n_folds: int, salt: str) -> np.ndarray:
    """Each id's fold in [0, n_folds), a function of the id and `salt` alone: a row keeps its fold
    whatever other rows the table holds or in which order they come."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    digests = (hashlib.md5(f"{salt}:{i}".encode()).digest() for i in ids.astype(str))
    return np.fromiter((int.from_bytes(d[:8], "big") % n_folds for d in digests), dtype=np.int64, count=len(ids))


TRAINING_SPLITS = ("weak_train", "transfer", "val")
TRAINED_ROWS_FILE = "trained_rows.parquet"  # the record of them on a pipeline run


def text_digests(texts: pd.Series) -> pd.Series:
    """The md5 of each text: how rows are matched across data versions, whatever their ids."""
    return texts.map(lambda t: hashlib.md5(str(t).encode()).hexdigest())


def trained_rows(splits: pd.DataFrame) -> pd.DataFrame:
    """The rows any model of a run learned from or was selected on (`id, split, text_md5`):
    the record a later promotion gate reads to keep them out of its evaluation set."""
    rows = splits[splits["split"].isin(TRAINING_SPLITS)]
    return pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            "split": rows["split"].to_numpy(),
            "text_md5": text_digests(rows["text"]).to_numpy(),
        }
    )

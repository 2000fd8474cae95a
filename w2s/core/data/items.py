"""Items: the rows built from one source item move together.

A task that turns one source item into several rows (a question's correct and incorrect answer,
the chosen and rejected transcript of one comparison) gives those rows a shared `pair` key. Dedupe,
subsampling and splitting then act on whole items, so an item never straddles two splits: a model
trained on one half of a pair must not be tested on the other half.

A row whose `pair` is null (or a table without the column) is an item on its own, and item `i`
is then row `i`: code written against items behaves exactly as row-by-row code on unpaired data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PAIR = "pair"


def is_paired(table: pd.DataFrame) -> bool:
    """Whether any row of the table carries a pair key."""
    return PAIR in table.columns and bool(table[PAIR].notna().any())


def item_codes(table: pd.DataFrame) -> np.ndarray:
    """The item of every row as 0..K-1, numbered by first appearance (row `i` is item `i` when
    the table is unpaired)."""
    if not is_paired(table):
        return np.arange(len(table))
    pair = table[PAIR].reset_index(drop=True)
    # Prefixes keep a pair key from colliding with the row number that keys an unpaired row.
    own = "r:" + pd.Series(range(len(pair))).astype(str)
    keys = ("p:" + pair.astype(str)).where(pair.notna(), own)
    codes, _ = pd.factorize(keys, sort=False)
    return np.asarray(codes)


def item_count(codes: np.ndarray) -> int:
    """How many items the codes of a table name."""
    return int(codes.max()) + 1 if len(codes) else 0


def rows_of(codes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The positions of every row of `items`, in table order."""
    return np.flatnonzero(np.isin(codes, items))


def items_for(rows: int, n_items: int, n_rows: int) -> int:
    """Whole items that hold about `rows` rows: ceil(rows / mean item size). Exactly `rows` for
    unpaired data; for items of k rows each, the smallest count holding at least `rows` rows."""
    return -(-rows * n_items // n_rows) if n_rows else 0


def item_strata(labels: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """One stratum per item, to stratify on: its label for an unpaired row, else the sorted set of
    its rows' labels (every pair of a binary task is one stratum, `0+1`: each holds both classes)."""
    if len(codes) == 0 or item_count(codes) == len(codes):
        return np.asarray(labels)
    frame = pd.DataFrame({"item": codes, "label": pd.Series(labels).astype(str).to_numpy()})
    frame = frame.drop_duplicates().sort_values(["item", "label"], kind="stable")
    joined = frame.groupby("item", sort=True)["label"].agg("+".join)
    return joined.to_numpy()

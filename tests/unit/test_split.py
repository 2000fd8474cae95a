import numpy as np
import pandas as pd
import pytest

from w2s.config import SplitConfig
from w2s.core.data.split import assign_splits, encode_labels, hash_folds, label_names
from w2s.errors import DataError


def _table(n=400, rare=6):
    labels = ["common"] * (n - rare) + ["rare"] * rare
    return pd.DataFrame(
        {"id": [f"i{k}" for k in range(n)], "text": [f"text {k}" for k in range(n)], "label": labels, "group": None}
    )


CFG = SplitConfig(weak_train=40, transfer=200, val=50, test=100, min_test=100)


def test_sizes_are_exact_and_disjoint():
    out = assign_splits(_table(), CFG, seed=0)
    assert out["split"].value_counts().to_dict() == {"transfer": 200, "test": 100, "val": 50, "weak_train": 40}
    assert out["id"].is_unique


def test_same_seed_same_splits_other_seed_other_splits():
    a, b, c = (assign_splits(_table(), CFG, seed=s) for s in (0, 0, 1))
    assert a.equals(b)
    assert not a.equals(c)


def test_weak_train_is_stratified_so_rare_classes_are_present():
    for seed in range(5):
        out = assign_splits(_table(), CFG, seed=seed)
        weak = out[out["split"] == "weak_train"]
        assert (weak["label"] == "rare").sum() >= 1


def test_too_few_rows_names_the_sizes():
    with pytest.raises(DataError, match="need 390 rows .* but the data has 100"):
        assign_splits(_table(100), CFG, seed=0)


def test_label_names_and_encoding():
    t = _table()
    assert label_names(t, None) == ["common", "rare"]
    assert label_names(t, ["rare", "common"]) == ["rare", "common"]
    assert encode_labels(pd.Series(["rare", "common"]), ["common", "rare"]).tolist() == [1, 0]


def test_hash_folds_depend_on_the_id_and_salt_alone():
    ids = pd.Series([f"t{i}" for i in range(400)])
    folds = hash_folds(ids, 3, "s0")
    assert set(folds) == {0, 1, 2} and min(np.bincount(folds)) > 100, "roughly balanced"
    shuffled = ids.sample(frac=1.0, random_state=1)
    by_id = dict(zip(ids, folds, strict=True))
    assert list(hash_folds(shuffled, 3, "s0")) == [by_id[i] for i in shuffled], "order does not matter"
    assert list(hash_folds(ids[:50], 3, "s0")) == list(folds[:50]), "other rows do not matter"
    assert (hash_folds(ids, 3, "s1") != folds).mean() > 0.5, "the salt reshuffles"
    with pytest.raises(ValueError, match="n_folds"):
        hash_folds(ids, 0, "s0")

import pandas as pd
import pytest

from w2s.config import SplitConfig
from w2s.core.data.split import assign_splits, encode_labels, label_names
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

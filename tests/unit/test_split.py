import numpy as np
import pandas as pd
import pytest

from w2s.core.config import SplitConfig
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


def test_fractions_take_a_share_of_the_rows_and_counts_that_do_not_fit_are_scaled_with_a_warning(caplog):
    from w2s.core.data.split import split_sizes

    fractions = SplitConfig(weak_train=0.1, transfer=0.5, val=0.1, test=0.25)
    assert split_sizes(fractions, 2000) == {"weak_train": 200, "transfer": 1000, "val": 200, "test": 500}
    counts = SplitConfig()  # 200 + 2000 + 400 + 1000 = 3600 rows, for a 2,000-row file
    with caplog.at_level("WARNING"):
        scaled = split_sizes(counts, 2000)
    assert scaled == {"weak_train": 111, "transfer": 1111, "val": 222, "test": 555}
    assert "need 3600 rows" in caplog.text and "scaled to fit" in caplog.text
    assert split_sizes(counts, 3600) == {"weak_train": 200, "transfer": 2000, "val": 400, "test": 1000}
    with pytest.raises(DataError, match=r"need 3600 rows .* but the data has 2000 rows$"):
        split_sizes(counts.model_copy(update={"scale_to_fit": False}), 2000)
    with pytest.raises(DataError, match=r"scaled to fit, test would hold 83 rows, below split.min_test=100"):
        split_sizes(counts, 300)
    with pytest.raises(ValueError, match="add up to more than 1"):
        SplitConfig(weak_train=0.5, transfer=0.5, val=0.1, test=0.2)


def test_a_2000_row_table_splits_with_the_default_sizes():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "id": [str(i) for i in range(2000)],
            "text": [f"t{i}" for i in range(2000)],
            "label": rng.choice(["a", "b"], 2000),
        }
    ).assign(group=None, pair=None)
    counts = assign_splits(table, SplitConfig(), seed=0)["split"].value_counts().to_dict()
    assert counts == {"transfer": 1111, "test": 555, "val": 222, "weak_train": 111}


def _grouped(n_per: int = 100) -> pd.DataFrame:
    """Four topics, two per class: a/x and a/y are class a, b/x and b/y class b."""
    groups = ["a/x", "a/y", "b/x", "b/y"]
    g = np.repeat(groups, n_per)
    return pd.DataFrame(
        {"id": [f"i{k}" for k in range(len(g))], "text": [f"t{k}" for k in range(len(g))], "label": [s[0] for s in g]}
    ).assign(group=g)


def test_source_groups_train_the_weak_budget_on_a_shifted_source_and_the_rest_on_the_target():
    cfg = SplitConfig(weak_train=40, transfer=120, val=20, test=40, min_test=20, source_groups=["a/x", "b/x"])
    out = assign_splits(_grouped(), cfg, seed=0)
    groups = out.groupby("split")["group"].agg(set).to_dict()
    assert groups["weak_train"] == {"a/x", "b/x"}
    for split in ("transfer", "val", "test"):
        assert groups[split] <= {"a/y", "b/y"}, split
    assert out["split"].value_counts().to_dict() == {"transfer": 120, "weak_train": 40, "test": 40, "val": 20}
    weak = out[out["split"] == "weak_train"]
    assert weak["label"].value_counts().to_dict() == {"a": 20, "b": 20}, "stratified by class"
    assert out["id"].is_unique and out.equals(assign_splits(_grouped(), cfg, seed=0))
    # with held-out groups too: three pools, none shared
    both = cfg.model_copy(update={"ood_groups": ["b/y"], "ood_test": 40, "transfer": 80})
    out = assign_splits(_grouped(), both, seed=1)
    assert set(out.loc[out["split"] == "ood_test", "group"]) == {"b/y"}
    assert set(out.loc[out["split"].isin(["transfer", "val", "test"]), "group"]) == {"a/y"}


def test_source_groups_must_exist_leave_a_target_and_stay_apart_from_held_out_groups():
    with pytest.raises(DataError, match=r"source_groups names group\(s\) absent .*\['c/z'\]"):
        assign_splits(_grouped(), SplitConfig(weak_train=20, transfer=50, val=10, test=20, min_test=20,
                                             source_groups=["c/z"]), seed=0)  # fmt: skip
    every = SplitConfig(
        weak_train=20, transfer=50, val=10, test=20, min_test=20, source_groups=["a/x", "a/y", "b/x", "b/y"]
    )
    with pytest.raises(DataError, match="no target rows"):
        assign_splits(_grouped(), every, seed=0)
    too_big = SplitConfig(
        weak_train=20, transfer=300, val=10, test=20, min_test=20, scale_to_fit=False, source_groups=["a/x"]
    )
    with pytest.raises(
        DataError, match=r"need 330 rows .* but the target data \(outside split.source_groups\) has 300"
    ):
        assign_splits(_grouped(), too_big, seed=0)
    with pytest.raises(ValueError, match=r"share group\(s\) \['a/x'\]"):
        SplitConfig(source_groups=["a/x"], ood_groups=["a/x"])

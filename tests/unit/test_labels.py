import numpy as np
import pandas as pd
import pytest

from w2s.errors import DataError
from w2s.pipeline.labels import (
    build_weak_labels,
    read_weak_labels,
    write_predictions,
    write_weak_labels,
)
from w2s.pipeline.predictions import aligned_probs

SPLITS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d"],
        "text": ["ta", "tb", "tc", "td"],
        "label": ["x", "y", "x", "y"],
        "split": ["weak_train", "transfer", "val", "test"],
    }
)


def _preds(ids, splits):
    return pd.DataFrame({"id": ids, "split": splits, "probs": [[0.3, 0.7]] * len(ids)})


def test_weak_labels_follow_the_schema_and_the_source_ids(tmp_path):
    labels = build_weak_labels(SPLITS, _preds(["b", "c", "d"], ["transfer", "val", "test"]))
    assert list(labels.columns) == ["id", "text", "weak_probs", "weak_label", "split"]
    assert labels["id"].tolist() == ["b", "c"] and labels["weak_label"].tolist() == [1, 1]
    md5 = write_weak_labels(labels, tmp_path / "wl.parquet", {"weak_model": {"kind": "tfidf"}})
    assert len(md5) == 32 and (tmp_path / "wl.json").is_file()
    back = read_weak_labels(tmp_path / "wl.parquet")
    assert back["id"].tolist() == ["b", "c"]
    assert [list(p) for p in back["weak_probs"]] == [[0.3, 0.7], [0.3, 0.7]]


def test_misaligned_weak_predictions_are_an_error():
    with pytest.raises(DataError, match="weak-label ids do not match"):
        build_weak_labels(SPLITS, _preds(["c", "b"], ["transfer", "val"]))


def test_prediction_alignment_is_asserted(tmp_path):
    write_predictions(tmp_path / "p.parquet", pd.Series(["d"]), pd.Series(["test"]), np.array([[0.1, 0.9]]))
    preds = pd.read_parquet(tmp_path / "p.parquet")
    assert aligned_probs(preds, pd.Series(["d"]), "x").tolist() == [[0.1, 0.9]]
    with pytest.raises(DataError, match="prediction ids do not match"):
        aligned_probs(preds, pd.Series(["e"]), "x")


def test_a_weak_label_file_without_the_schema_is_rejected(tmp_path):
    pd.DataFrame({"id": ["a"], "probs": [[1.0]]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="lacks column"):
        read_weak_labels(tmp_path / "bad.parquet")

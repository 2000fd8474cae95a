"""The bad-input matrix: every case fails before any training with one line that names the file,
row or key, a non-zero exit, nothing half-written, no model version registered, no alias moved.

Cases that a user reaches through `w2s run` go through the real CLI against one shared project
whose registry already holds a version with `champion` and `challenger` aliases, so "no alias
moved" is observable. Cases no user input reaches directly (weak probabilities, weak-label ids)
are driven through the pipeline step that owns the check.
(More CLI cases -- unknown label, empty file, NaN text, unknown key, missing file -- are in
tests/test_cli_errors.py.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s.errors import DataError, ValidationFailed

from conftest import publish


def _good_rows(n: int = 700) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "text": f"sample text number {i} about {'cats' if i % 2 else 'dogs'}",
            "label": "pos" if i % 2 else "neg",
        }
        for i in range(n)
    ]


def _csv(path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(path, index=False)


def _jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_texts_longer_than_the_context_are_truncated_and_counted_not_dropped(caplog):
    from transformers import AutoTokenizer

    from w2s.core.models.batching import encode
    from w2s.core.models.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))
    texts = ["short one", "word " * 5000, "another short text", "long " * 40]
    with caplog.at_level(logging.WARNING, logger="w2s.core.models.batching"):
        enc = encode(tokenizer, texts, max_length=32)
    assert len(enc) == len(texts)  # nothing dropped
    assert enc.truncated == 2
    assert enc.lengths.tolist()[1] == enc.lengths.tolist()[3] == 32
    assert enc.ids[1][-1] == tokenizer.sep_token_id  # cut, then closed like any sequence
    assert "2 of 4 texts were longer than 32 tokens and were truncated" in caplog.text


def _label_step(tmp_path: Path, probs: list[list[float]], pred_ids: list[str] | None = None):
    from w2s.core.refs import ModelRef, SplitsRef, TableRef

    splits = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "text": ["ta", "tb", "tc", "td", "te"],
            "label": ["x", "y", "x", "y", "x"],
            "split": ["weak_train", "transfer", "transfer", "val", "test"],
        }
    )
    splits.to_parquet(tmp_path / "splits.parquet", index=False)
    weak_dir = tmp_path / "weak"
    weak_dir.mkdir()
    ids = pred_ids or ["b", "c", "d", "e"]
    pd.DataFrame({"id": ids, "split": ["transfer", "transfer", "val", "test"], "probs": probs}).to_parquet(
        weak_dir / "preds.parquet", index=False
    )
    return (
        SplitsRef(str(tmp_path / "splits.parquet"), "m", ["x", "y"], {}),
        ModelRef("weak", str(weak_dir), "k" * 16, False, {"kind": "tfidf"}),
        TableRef("t", "d" * 32, ["x", "y"], 5, {}, {}),
    )


GOOD = [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.6, 0.4]]


@pytest.mark.parametrize(
    "bad_row, column",
    [
        ([float("nan"), 0.5], "expect_column_values_to_not_be_null on column 'prob_min'"),
        ([-0.2, 1.2], "expect_column_values_to_be_between on column 'prob_min'"),
        ([0.7, 0.7], "expect_column_values_to_be_between on column 'prob_sum'"),
    ],
    ids=["nan", "negative", "not-normalised"],
)
def test_bad_weak_probabilities_stop_the_gate_before_a_label_file_exists(tmp_path, bad_row, column):
    splits, weak, table = _label_step(tmp_path, [GOOD[0], bad_row, *GOOD[2:]])
    target = tmp_path / "weak_labels" / "wl.parquet"
    with pytest.raises(ValidationFailed, match=column) as info:
        publish(splits, weak, table, target)
    assert str(info.value).startswith("validation gate 'weak_labels' failed: ")
    assert "\n" not in str(info.value)
    assert not target.exists() and not target.with_suffix(".json").exists()


def test_weak_label_ids_that_do_not_match_the_source_name_the_file_and_row(tmp_path):
    splits, weak, table = _label_step(tmp_path, GOOD, pred_ids=["b", "zz", "d", "e"])
    target = tmp_path / "weak_labels" / "wl.parquet"
    with pytest.raises(DataError) as info:
        publish(splits, weak, table, target)
    msg = str(info.value)
    assert msg.startswith(f"{Path(weak.dir) / 'preds.parquet'}: weak-label ids do not match")
    assert "row 2 is transfer id 'c' in the source but transfer id 'zz' here" in msg
    assert not target.exists() and not target.with_suffix(".json").exists()


def test_label_column_of_objects_is_refused_with_its_line(tmp_path):
    from w2s.core.config import DataConfig
    from w2s.core.data.sources import read_source
    from w2s.project import Project

    rows = [json.dumps({"text": f"t{i}", "label": "pos"}) for i in range(5)]
    rows[2] = json.dumps({"text": "t2", "label": ["pos", "neg"]})
    _jsonl(tmp_path / "d.jsonl", ["", *rows])  # a blank first line: line numbers stay the file's
    with pytest.raises(DataError, match=r"d.jsonl: column 'label' \(data.label_column\) holds a list at line 4"):
        read_source(DataConfig(path="d.jsonl"), Project(tmp_path))


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    from w2s.core.config import DataConfig
    from w2s.core.data.sources import read_source
    from w2s.project import Project

    (tmp_path / "d.csv").write_bytes("text,label\ncafé,pos\nthé,neg\n".encode("utf-8-sig"))
    table, _ = read_source(DataConfig(path="d.csv"), Project(tmp_path))
    assert table["text"].tolist() == ["café", "thé"]
    assert np.array_equal(table["label"].to_numpy(), np.array(["pos", "neg"], dtype=object))

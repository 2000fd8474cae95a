"""Streaming ingest: batches in, the canonical table file out, the same table as in memory."""

import json

import numpy as np
import pandas as pd
import pytest

from w2s.core.config import DataConfig
from w2s.core.data import file_readers
from w2s.core.data.ingest import ingest_table, iter_table, read_rows
from w2s.core.data.sources import canonicalise, read_source, table_md5
from w2s.errors import DataError
from w2s.ops.validation import validate_raw, validate_raw_file
from w2s.project import Project


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    texts = [f"text  {i % 45}\twith spaces" for i in range(n)]  # 15 repeats, whitespace-normalised
    texts[7] = None  # a missing text is never a duplicate: row 52 (its repeat) stays
    return pd.DataFrame({"uid": [f"r{i}" for i in range(n)], "body": texts, "y": rng.choice(["a", "b"], n)})


def _write(df: pd.DataFrame, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        path.write_text(
            "".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in df.to_dict("records"))
        )
    else:
        df.to_parquet(path, index=False)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("max_rows", [None, 25])
def test_streamed_ingest_in_small_batches_writes_the_table_canonicalise_gives_in_memory(
    tmp_path, monkeypatch, suffix, max_rows
):
    monkeypatch.setattr(file_readers, "CSV_BLOCK_BYTES", 256)  # a CSV block of a few rows: many batches
    _write(_frame(), tmp_path / f"d{suffix}")
    cfg = DataConfig(path=f"d{suffix}", text_column="body", label_column="y", id_column="uid", max_rows=max_rows)
    expected, stats = canonicalise(read_source(cfg, Project(tmp_path))[0], cfg)

    done = ingest_table(cfg, Project(tmp_path), tmp_path / "out" / "table.parquet", batch_rows=7)

    table = pd.read_parquet(tmp_path / "out" / "table.parquet")
    assert table["id"].tolist() == expected["id"].tolist()
    assert table["text"].tolist() == expected["text"].tolist()
    assert done.md5 == table_md5(expected) and done.rows == len(expected) == (max_rows or 46)
    assert done.stats == stats and stats["duplicate_texts_dropped"] == 14
    assert done.labels == ["a", "b"] and done.source.kind == "file"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.parquet"]  # no scratch left


@pytest.mark.parametrize("block", [64, file_readers.CSV_BLOCK_BYTES])  # in a later block, and in the first
def test_a_bad_row_deep_in_the_file_stops_ingest_with_its_line_and_leaves_no_table(tmp_path, monkeypatch, block):
    monkeypatch.setattr(file_readers, "CSV_BLOCK_BYTES", block)
    lines = ["text,label", *[f"row {i},a" for i in range(40)]]
    lines[33] = "row \xff,b"
    (tmp_path / "d.csv").write_bytes("\n".join(lines).encode("utf-8").replace("\xff".encode(), b"\xff"))
    out = tmp_path / "out" / "table.parquet"
    with pytest.raises(DataError, match=r"d.csv: line 34: not UTF-8 text"):
        ingest_table(DataConfig(path="d.csv"), Project(tmp_path), out, batch_rows=5)
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize(
    "content, error",
    [
        (b"text,label\n\xff\xfe,a\n", r"d.csv: line 2: not UTF-8 text"),
        (b"text,label\nfine,a\nx,y,z\n", r"d.csv: line 3: cannot parse CSV: expected 2 fields, saw 3"),
        (b"", r"d.csv: the file is empty"),
    ],
)
def test_a_first_block_that_does_not_parse_fails_before_a_streaming_reader_opens(tmp_path, monkeypatch, content, error):
    # A streaming reader that fails on opening can abort the interpreter at exit once torch is
    # loaded (exit 134 after the one-line error), so a bad first block must fail without one.
    import pyarrow.csv as pacsv

    def no_streaming_reader(*args, **kwargs):
        raise AssertionError("pyarrow's streaming reader opened on a first block that does not parse")

    monkeypatch.setattr(pacsv, "open_csv", no_streaming_reader)
    (tmp_path / "d.csv").write_bytes(content)
    with pytest.raises(DataError, match=error):
        list(file_readers.read_columns(tmp_path / "d.csv", {"data.text_column": "text"}, "data.path"))


def test_a_first_block_cut_inside_a_quoted_value_reads_every_row(tmp_path, monkeypatch):
    rows = pd.DataFrame({"text": ["one", "two\nlines", "three\nmore\nlines", "four"] * 20, "label": ["a", "b"] * 40})
    rows.to_csv(tmp_path / "d.csv", index=False)
    raw = (tmp_path / "d.csv").read_bytes()
    cut = raw.index(b"more") + 2  # the first block ends inside a quoted value with line breaks
    assert raw.rfind(b"\n", 0, cut) > raw.index(b'"three')
    monkeypatch.setattr(file_readers, "CSV_BLOCK_BYTES", cut)
    read = pd.concat(f for f, _, _ in file_readers.read_columns(tmp_path / "d.csv", {"t": "text", "l": "label"}, "x"))
    assert read["text"].tolist() == rows["text"].tolist() and read["label"].tolist() == rows["label"].tolist()


def test_mixed_value_types_are_found_across_batches(tmp_path):
    rows = [{"text": f"t{i}", "label": "1"} for i in range(9)]
    rows[6]["label"] = 1
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"mixes value types: string at line 1 \('1'\), number at line 7 \(1\)"):
        ingest_table(DataConfig(path="d.jsonl"), Project(tmp_path), tmp_path / "t.parquet", batch_rows=2)


def test_default_ids_are_row_numbers_across_batches(tmp_path):
    pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": ["a", "b"] * 5}).to_parquet(tmp_path / "d.parquet")
    ingest_table(DataConfig(path="d.parquet"), Project(tmp_path), tmp_path / "t.parquet", batch_rows=3)
    assert pd.read_parquet(tmp_path / "t.parquet")["id"].tolist() == [str(i) for i in range(10)]


def test_the_batched_raw_gate_finds_what_the_whole_table_gate_finds(tmp_path):
    table = pd.DataFrame(
        {
            "id": [f"i{i}" for i in range(30)],
            "text": [f"t{i}" for i in range(30)],
            "label": ["a", "b", "c"] * 10,
            "group": None,
            "pair": None,
        }
    )
    table.loc[25, "id"] = "i2"  # a duplicate id in another batch than its twin
    table.loc[[4, 14, 24], "text"] = "  "  # empty texts in three batches
    path = tmp_path / "t.parquet"
    table.to_parquet(path, index=False)

    batched = validate_raw_file(path, ["a", "b"], batch_rows=10)
    whole = validate_raw(table, ["a", "b"])

    assert batched.evaluated == whole.evaluated == 9
    kinds = lambda r: sorted(f.split(" (")[0] for f in r.failures)  # noqa: E731
    assert (
        kinds(batched)
        == kinds(whole)
        == [
            "expect_column_values_to_be_in_set on column 'label'",
            "expect_column_values_to_be_unique on column 'id'",
            "expect_column_values_to_not_match_regex on column 'text'",
        ]
    )
    assert any("not_match_regex" in f and "in 3 batches" in f for f in batched.failures)
    assert "expect_column_values_to_be_unique on column 'id' (2 unexpected; e.g. 'i2')" in batched.failures
    table.loc[25, "id"], table.loc[[4, 14, 24], "text"] = "i25", "fine"
    table.to_parquet(path, index=False)
    assert validate_raw_file(path, ["a", "b", "c"], batch_rows=10).success


def test_read_rows_takes_positions_in_any_order_one_batch_at_a_time(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"id": [str(i) for i in range(23)], "text": [f"t{i}" for i in range(23)]}).to_parquet(path)
    got = read_rows(path, np.array([22, 0, 9, 10, 3]), ["text"], batch_rows=5)
    assert got["text"].tolist() == ["t22", "t0", "t9", "t10", "t3"]
    assert sum(len(b) for b in iter_table(path, ["id"], batch_rows=5)) == 23
    with pytest.raises(IndexError):
        read_rows(path, np.array([23]), ["text"])


def test_ids_whose_hashes_collide_are_not_reported_as_repeated(tmp_path, monkeypatch):
    from w2s.ops import validation

    table = pd.DataFrame(
        {"id": ["a", "b", "c", "a"], "text": list("wxyz"), "label": list("pqpq"), "group": None, "pair": None}
    )
    table.to_parquet(tmp_path / "t.parquet", index=False)
    assert any("'a'" in f for f in validate_raw_file(tmp_path / "t.parquet", None).failures)
    table.loc[3, "id"] = "d"
    table.to_parquet(tmp_path / "t.parquet", index=False)
    monkeypatch.setattr(validation, "_id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64))  # all collide
    assert validate_raw_file(tmp_path / "t.parquet", None, batch_rows=2).success

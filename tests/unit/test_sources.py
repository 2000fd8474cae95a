import json

import pandas as pd
import pytest

from w2s.core.config import DataConfig
from w2s.core.data.sources import canonicalise, read_source, table_md5
from w2s.errors import DataError
from w2s.project import Project

ROWS = [("r1", "good film", "pos"), ("r2", "bad film", "neg"), ("r3", "fine film", "pos")]


def _write(path, fmt):
    df = pd.DataFrame(ROWS, columns=["uid", "body", "sentiment"])
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")) + "\n")
    else:
        df.to_parquet(path, index=False)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_file_format_maps_to_the_canonical_columns(tmp_path, fmt):
    _write(tmp_path / f"d.{fmt}", fmt)
    cfg = DataConfig(path=f"d.{fmt}", text_column="body", label_column="sentiment", id_column="uid")
    table, source = read_source(cfg, Project(tmp_path))
    assert list(table.columns) == ["id", "text", "label", "group", "pair"]
    assert table["pair"].isna().all()  # a file is unpaired: every row is its own item
    assert table["id"].tolist() == ["r1", "r2", "r3"]
    assert table["label"].tolist() == ["pos", "neg", "pos"]
    assert source.kind == "file" and len(source.md5) == 32


def test_row_numbers_are_ids_when_no_id_column(tmp_path):
    _write(tmp_path / "d.csv", "csv")
    table, _ = read_source(DataConfig(path="d.csv", text_column="body", label_column="sentiment"), Project(tmp_path))
    assert table["id"].tolist() == ["0", "1", "2"]


def test_missing_column_names_the_column_and_the_key(tmp_path):
    _write(tmp_path / "d.csv", "csv")
    cfg = DataConfig(path="d.csv", text_column="review", label_column="sentiment")
    with pytest.raises(DataError, match=r"no column 'review' \(data.text_column\); columns are: uid, body"):
        read_source(cfg, Project(tmp_path))


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, content, message):
    p = tmp_path / "d.csv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        read_source(DataConfig(path="d.csv"), Project(tmp_path))


def test_unsupported_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unsupported file type"):
        read_source(DataConfig(path="d.xlsx"), Project(tmp_path))
    with pytest.raises(DataError, match="data file not found"):
        read_source(DataConfig(path="d.csv"), Project(tmp_path))


def test_hf_dataset_saved_to_disk_with_classlabel(tmp_path):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"), "y": datasets.ClassLabel(names=["neg", "pos"])})
    ds = datasets.Dataset.from_dict({"sentence": ["a", "b", "c"], "y": [1, 0, 1]}, features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hf"))
    cfg = DataConfig(hf_name="hf", text_column="sentence", label_column="y")
    table, source = read_source(cfg, Project(tmp_path))
    assert table["label"].tolist() == ["pos", "neg", "pos"]
    assert source.kind == "hf"


def test_unreachable_hub_dataset_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="cannot load HF dataset 'no-such-org/no-such-data'"):
        read_source(DataConfig(hf_name="no-such-org/no-such-data"), Project(tmp_path))


def test_dedupe_and_deterministic_subsample():
    table = pd.DataFrame(
        {
            "id": [str(i) for i in range(50)],
            "text": [f"t{i % 40}" for i in range(50)],
            "label": ["a", "b"] * 25,
            "group": None,
        }
    )
    out, stats = canonicalise(table, DataConfig(max_rows=20))
    assert stats["duplicate_texts_dropped"] == 10
    assert len(out) == 20 and out["text"].is_unique
    again, _ = canonicalise(table.sample(frac=1, random_state=3).sort_index(), DataConfig(max_rows=20))
    assert table_md5(out) == table_md5(again)


def test_table_md5_sees_any_cell_change():
    table = pd.DataFrame({"id": ["1", "2"], "text": ["x", "y"], "label": ["a", "b"], "group": None})
    changed = table.copy()
    changed.loc[1, "label"] = "a"
    assert table_md5(table) != table_md5(changed)


def test_a_files_own_group_column_feeds_the_held_out_split(tmp_path):
    """data.group_column names the column of groups (here `topic`), which split.ood_groups holds out."""
    import pandas as pd

    from w2s.config import load_config
    from w2s.core.data.sources import canonicalise, read_source
    from w2s.core.data.split import assign_splits
    from w2s.project import Project

    rows = [{"body": f"text {i}", "y": "a" if i % 2 else "b", "topic": f"t{i % 4}"} for i in range(800)]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    cfg = load_config(
        None,
        ["data.path=d.csv", "data.text_column=body", "data.label_column=y", "data.group_column=topic",
         "split={weak_train: 50, transfer: 100, val: 50, test: 100, ood_groups: [t3], ood_test: 100}"],
    )  # fmt: skip
    table, _ = canonicalise(read_source(cfg.data, Project(tmp_path))[0], cfg.data)
    assert set(table["group"]) == {"t0", "t1", "t2", "t3"}
    splits = assign_splits(table, cfg.split, 0)
    assert set(splits.loc[splits["split"] == "ood_test", "group"]) == {"t3"}
    assert "t3" not in set(splits.loc[splits["split"] != "ood_test", "group"])

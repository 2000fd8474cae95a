"""The standard task suite (`data.name=sciq` ...): formatters on small tables in each dataset's real
hub schema, read back from a `save_to_disk` folder and from a folder of Parquet files, and the
pairing of rows built from one item through dedupe, subsampling and splitting."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from w2s.config import load_config
from w2s.core.config import DataConfig, SplitConfig
from w2s.core.data import suite
from w2s.core.data.sources import COLUMNS, canonicalise, read_source
from w2s.core.data.split import assign_splits
from w2s.errors import ConfigError, DataError
from w2s.project import Project

from suite_schemas import FIXTURES, amazon, boolq, features, hh, save_task, sciq


def _read(task: str, root: Path, hf_name: str, **cfg) -> tuple[pd.DataFrame, object]:
    return read_source(DataConfig(name=task, hf_name=hf_name, **cfg), Project(root))


# items the formatter must keep, per task (cosmos_qa skips a "None of the above" true answer)
def _expected_rows(task: str) -> int:
    spec = suite.task(task)
    schema, splits = FIXTURES[task]
    kept = 0
    for split in spec.splits:
        rows = splits[split]
        if task == "cosmos_qa":
            rows = [r for r in rows if r[f"answer{r['label']}"] != suite.COSMOS_NONE]
        kept += len(rows)
    return kept * (2 if spec.paired else 1)


@pytest.mark.parametrize("layout", ["disk", "parquet"])
@pytest.mark.parametrize("task", list(FIXTURES))
def test_every_task_reads_its_splits_into_the_canonical_table(tmp_path, task, layout):
    table, source = _read(task, tmp_path, save_task(task, tmp_path, layout))
    spec = suite.task(task)
    assert list(table.columns) == COLUMNS
    assert len(table) == _expected_rows(task)
    assert table["id"].is_unique and table["text"].is_unique
    assert set(table["label"]) == {"0", "1"}
    assert table["group"].isna().all()
    assert {i.split("-")[0] for i in table["id"]} == set(spec.splits)  # only the mapped hub splits
    if spec.paired:
        per_pair = table.groupby("pair")["label"].agg(sorted)
        assert per_pair.map(lambda labels: labels == ["0", "1"]).all()
        assert len(per_pair) * 2 == len(table)
    else:
        assert table["pair"].isna().all()
    assert source.kind == "task" and source.location.startswith(f"{task} <- ") and len(source.md5) == 32


@pytest.mark.parametrize("task", ["sciq", "anli-r2", "anthropic_hh"])
def test_both_local_layouts_give_the_same_table(tmp_path, task):
    disk, _ = _read(task, tmp_path, save_task(task, tmp_path, "disk"))
    parquet, _ = _read(task, tmp_path, save_task(task, tmp_path, "parquet"))
    pd.testing.assert_frame_equal(disk, parquet)


def _rows_for(table: pd.DataFrame, item_id: str) -> dict[str, str]:
    rows = table[table["id"].str.startswith(item_id + "-") | (table["id"] == item_id)]
    return dict(zip(rows["label"], rows["text"], strict=True))


def test_sciq_pairs_the_correct_answer_with_one_distractor(tmp_path):
    table, _ = _read("sciq", tmp_path, save_task("sciq", tmp_path, "disk"))
    rows = _rows_for(table, "train-0000003")
    q = "train question 3: what carries charge?"
    assert rows["1"] == f"Q: {q} A: electron 3"  # OpenAI/EleutherAI format_sciq, no support paragraph
    assert rows["0"] in {f"Q: {q} A: {d} 3" for d in ("photon", "neutrino", "neutron")}
    again, _ = _read("sciq", tmp_path, save_task("sciq", tmp_path, "parquet"))
    assert _rows_for(again, "train-0000003") == rows  # the distractor is chosen by content, not a seed


def test_sciq_with_support_uses_the_elk_template(tmp_path):
    table, _ = _read("sciq_with_support", tmp_path, save_task("sciq_with_support", tmp_path, "disk"))
    rows = _rows_for(table, "validation-0000001")
    assert rows["1"] == (
        "Name: Bob\n\nPassage 1:\nSupport paragraph validation 1 about electrons.\n\n"
        'Q1: "validation question 1: what carries charge?" Is the answer "electron 1"?'
    )


def test_boolq_anli_and_amazon_templates_and_labels(tmp_path):
    boolq, _ = _read("boolq", tmp_path, save_task("boolq", tmp_path, "disk"))
    row = boolq.set_index("id").loc["train-0000004"]
    assert row["text"] == "Passage: Passage train 4.\nQuestion: is train fact 4 true" and row["label"] == "1"
    assert boolq.set_index("id").loc["train-0000003", "label"] == "0"

    anli, _ = _read("anli-r2", tmp_path, save_task("anli-r2", tmp_path, "disk"))
    by_id = anli.set_index("id")
    assert by_id.loc["test_r2-0000000", "text"] == (
        "Premise: Premise test_r2 0.\nHypothesis: Hypothesis test_r2 0.\n\nDoes the premise entail the hypothesis?"
    )
    # EleutherAI's binarisation: entailment (0) is 1; neutral (1) and contradiction (2) are 0
    assert [by_id.loc[f"train_r2-000000{i}", "label"] for i in range(3)] == ["1", "0", "0"]

    amazon, _ = _read("amazon_polarity", tmp_path, save_task("amazon_polarity", tmp_path, "parquet"))
    row = amazon.set_index("id").loc["test-0000005"]
    assert row["text"] == "Title test 5 Review test 5." and row["label"] == "1"


def test_cosmos_qa_pairs_and_skips_none_of_the_above_answers(tmp_path):
    table, _ = _read("cosmos_qa", tmp_path, save_task("cosmos_qa", tmp_path, "disk"))
    rows = _rows_for(table, "train-0000002")  # label 2; "None of the above" is one wrong candidate
    head = "Context: Context train 2.\nQuestion: Why train 2?\nAnswer: "
    assert rows["1"] == head + "train answer 2.2"
    assert rows["0"] in {head + a for a in ("train answer 2.0", "train answer 2.1", suite.COSMOS_NONE)}
    assert _rows_for(table, "train-0000009") == {}  # its true answer is "None of the above"


def test_anthropic_hh_labels_each_transcript_of_a_pair(tmp_path):
    table, _ = _read("anthropic_hh", tmp_path, save_task("anthropic_hh", tmp_path, "disk"))
    rows = _rows_for(table, "test-0000007")
    assert rows == {
        "1": "\n\nHuman: question test 7\n\nAssistant: helpful 7",
        "0": "\n\nHuman: question test 7\n\nAssistant: rude 7",
    }


def test_anthropic_hh_from_the_hubs_jsonl_files(tmp_path):
    """The hub stores hh-rlhf as <subset>/<split>.jsonl.gz files; a download of it reads as is."""
    for subset in ("harmless-base", "helpful-base"):
        (tmp_path / "hh" / subset).mkdir(parents=True)
        for split, n in (("train", 12), ("test", 4)):
            records = hh(f"{split}-{subset}", n)
            pd.DataFrame(records).to_json(tmp_path / "hh" / subset / f"{split}.jsonl.gz", orient="records", lines=True)
    table, source = _read("anthropic_hh", tmp_path, "hh")
    assert len(table) == 2 * (12 + 4) * 2 and table["id"].is_unique
    assert "[train, test]" in source.location


def test_hellaswag_lists_the_endings_and_asks_about_one(tmp_path):
    table, _ = _read("hellaswag", tmp_path, save_task("hellaswag", tmp_path, "parquet"))
    rows = _rows_for(table, "validation-0000001")
    endings = "\n".join(f"ending validation 1.{k}" for k in range(4))
    assert rows["1"] == (
        f"Context:\nA cook validation 1 then\n\nContinuations:\n\n{endings}\n\n"
        'Q: Is "ending validation 1.1" the best continuation?'
    )
    assert rows["0"] != rows["1"] and rows["0"].startswith(
        f"Context:\nA cook validation 1 then\n\nContinuations:\n\n{endings}"
    )


# -- pairs stay whole through dedupe, subsampling and splitting --

SPLIT = SplitConfig(weak_train=10, transfer=20, val=10, test=20, min_test=20)


@pytest.mark.parametrize("task", ["sciq", "anthropic_hh", "cosmos_qa"])
def test_no_pair_straddles_two_splits(tmp_path, task):
    raw, _ = _read(task, tmp_path, save_task(task, tmp_path, "disk"))
    table, _ = canonicalise(raw, DataConfig(name=task))
    for seed in range(5):
        splits = assign_splits(table, SPLIT, seed)
        assert splits.groupby("pair")["split"].nunique().max() == 1
        assert splits["split"].value_counts().to_dict() == {"transfer": 20, "test": 20, "weak_train": 10, "val": 10}
        weak = splits[splits["split"] == "weak_train"]
        assert weak["label"].value_counts().to_dict() == {"1": 5, "0": 5}  # each pair holds both classes
        assert splits["id"].is_unique


def test_a_task_table_passes_the_data_gates_after_a_parquet_round_trip(tmp_path):
    from w2s.ops.validation import validate_raw, validate_splits

    raw, _ = _read("sciq", tmp_path, save_task("sciq", tmp_path, "parquet"))
    table, _ = canonicalise(raw, DataConfig(name="sciq"))
    table.to_parquet(tmp_path / "table.parquet", index=False)  # as the ingest step writes it
    table = pd.read_parquet(tmp_path / "table.parquet")
    assert validate_raw(table, ["0", "1"]).success
    assert validate_splits(assign_splits(table, SPLIT, seed=0), ["0", "1"]).success


def test_pairs_in_held_out_groups_go_to_ood_test_whole():
    n = 120
    table = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(2 * n)],
            "text": [f"text {i}" for i in range(2 * n)],
            "label": ["1", "0"] * n,
            "group": [f"g{(i // 2) % 3}" for i in range(2 * n)],
            "pair": [f"p{i // 2}" for i in range(2 * n)],
        }
    )
    cfg = SplitConfig(weak_train=10, transfer=20, val=10, test=20, min_test=20, ood_groups=["g1"], ood_test=20)
    splits = assign_splits(table, cfg, seed=3)
    assert splits.groupby("pair")["split"].nunique().max() == 1
    assert (splits["split"] == "ood_test").sum() == 20
    assert set(splits.loc[splits["split"] == "ood_test", "group"]) == {"g1"}


def test_an_odd_split_size_rounds_up_to_whole_pairs(tmp_path):
    raw, _ = _read("sciq", tmp_path, save_task("sciq", tmp_path, "disk"))
    cfg = SplitConfig(weak_train=9, transfer=20, val=10, test=21, min_test=20)
    counts = assign_splits(raw, cfg, seed=0)["split"].value_counts().to_dict()
    assert counts == {"weak_train": 10, "transfer": 20, "val": 10, "test": 22}


def test_too_few_whole_items_is_a_clear_error(tmp_path):
    raw, _ = _read("sciq", tmp_path, save_task("sciq", tmp_path, "disk"))  # 42 items, 84 rows
    cfg = SplitConfig(weak_train=21, transfer=21, val=21, test=21, min_test=20)
    with pytest.raises(DataError, match=r"i\.e\. 44 whole items, but the data has 42 items \(84 rows\)"):
        assign_splits(raw, cfg, seed=0)


def test_dedupe_drops_the_whole_item_of_a_duplicate_text(tmp_path):
    records = hh("train", 10)
    records[6]["chosen"] = records[2]["chosen"]  # item 6 repeats item 2's chosen transcript
    records[8]["rejected"] = records[8]["chosen"]  # item 8 has one transcript twice: dropped by the formatter
    import datasets

    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(records), "test": datasets.Dataset.from_list(hh("test", 2))}
    ).save_to_disk(str(tmp_path / "hh"))
    raw, _ = _read("anthropic_hh", tmp_path, "hh")
    assert len(raw) == 2 * 11  # item 8 skipped at formatting
    table, stats = canonicalise(raw, DataConfig(name="anthropic_hh"))
    assert "train-0000006" not in set(table["pair"]) and "train-0000002" in set(table["pair"])
    assert stats["duplicate_texts_dropped"] == 1 and stats["partner_rows_dropped"] == 1
    assert len(table) == 2 * 10 and table.groupby("pair").size().eq(2).all()


def test_subsampling_keeps_whole_items(tmp_path):
    raw, _ = _read("sciq", tmp_path, save_task("sciq", tmp_path, "disk"))
    table, _ = canonicalise(raw, DataConfig(name="sciq", max_rows=31))
    assert len(table) == 30 and table.groupby("pair").size().eq(2).all()
    again, _ = canonicalise(raw.sample(frac=1, random_state=1), DataConfig(name="sciq", max_rows=31))
    assert set(again["id"]) == set(table["id"])  # hash order: the same items whatever the row order


def test_unpaired_splits_are_the_row_splits_of_before():
    """The item-level split reduces to the former row-level one: this digest was taken from the
    row-level `assign_splits` (before items existed) on the same table, with and without a shift."""
    n = 500
    table = pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "text": [f"text {k}" for k in range(n)],
            "label": [("a", "b", "c")[(k * k) % 7 % 3] for k in range(n)],
            "group": [("x", "y", "z")[k % 3] for k in range(n)],
        }
    )
    plain = assign_splits(table, SplitConfig(weak_train=30, transfer=200, val=50, test=100), seed=4)
    shift = assign_splits(
        table,
        SplitConfig(weak_train=20, transfer=100, val=30, test=100, ood_groups=["z"], ood_test=100),
        seed=4,
    )
    digest = hashlib.md5(
        (plain["id"] + plain["split"]).str.cat().encode() + (shift["id"] + shift["split"]).str.cat().encode()
    )
    assert digest.hexdigest() == UNPAIRED_DIGEST


UNPAIRED_DIGEST = "ca0b419385584d9f86df9ed2ce848b9f"


# -- errors: one line, naming what is wrong --


def test_a_missing_field_is_a_one_line_error_naming_it(tmp_path):
    import datasets

    rows = [{k: v for k, v in r.items() if k != "distractor1"} for r in sciq("train", 5)]
    datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s in ("train", "validation", "test")}).save_to_disk(
        str(tmp_path / "bad")
    )
    with pytest.raises(DataError) as err:
        _read("sciq", tmp_path, "bad")
    msg = str(err.value)
    assert msg.startswith("sciq: the data has no field 'distractor1' (columns: question, distractor3,")
    assert "\n" not in msg


def test_a_wrongly_typed_field_is_a_data_error(tmp_path):
    import datasets

    rows = [{**r, "answer": str(r["answer"])} for r in boolq("train", 4)]
    datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s in ("train", "validation")}).save_to_disk(
        str(tmp_path / "b")
    )
    with pytest.raises(DataError, match="boolq: field 'answer' must hold booleans"):
        _read("boolq", tmp_path, "b")


def test_a_missing_split_names_it_and_what_is_there(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(boolq("train", 4))}).save_to_disk(str(tmp_path / "b"))
    with pytest.raises(
        DataError, match=r"boolq: .* has no split 'validation' \(has: train; the task reads train, validation\)"
    ):
        _read("boolq", tmp_path, "b")
    (tmp_path / "p").mkdir()
    pd.DataFrame(boolq("train", 4)).to_parquet(tmp_path / "p" / "train-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"has no file for split 'validation' .*found train-00000-of-00001.parquet"):
        _read("boolq", tmp_path, "p")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither a save_to_disk dataset nor Parquet"):
        _read("boolq", tmp_path, "empty")


def test_a_single_saved_dataset_is_the_whole_pool(tmp_path):
    import datasets

    datasets.Dataset.from_list(amazon("x", 12), features=features("amazon_polarity")).save_to_disk(
        str(tmp_path / "one")
    )
    table, _ = _read("amazon_polarity", tmp_path, "one")
    assert len(table) == 12 and table["id"].str.startswith("all-").all()


def test_an_unknown_name_is_refused_before_any_work_listing_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.name=sciqq"])
    msg = str(err.value)
    assert "\n" not in msg and "'sciqq'" in msg
    for known in (
        "election-tweets",
        "20newsgroups-super",
        "sciq",
        "boolq",
        "cosmos_qa",
        "anli-r2",
        "amazon_polarity",
        "anthropic_hh",
    ):
        assert known in msg
    assert load_config(None, ["data.name=anli-r2"]).data.name == "anli-r2"


def test_without_hf_name_a_task_loads_its_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"^sciq: cannot load split 'train' of 'allenai/sciq': "):
        read_source(DataConfig(name="sciq"), Project(tmp_path))


def test_the_registry_covers_the_standard_suite():
    assert {"sciq", "boolq", "cosmos_qa", "anli-r2", "amazon_polarity", "anthropic_hh"} <= set(suite.TASKS)
    for name, spec in suite.TASKS.items():
        assert "/" in spec.hub_id and spec.splits and spec.reference, name


def test_a_local_copy_is_the_data_that_lineage_versions(tmp_path):
    from w2s.ops.lineage import snapshot_targets, source_files

    cfg = load_config(None, ["data.name=sciq", f"data.hf_name={save_task('sciq', tmp_path, 'parquet')}"])
    folder = tmp_path / "sciq-parquet"
    files = source_files(cfg, Project(tmp_path))
    assert files == sorted(folder.rglob("*.parquet")) and len(files) == 3
    assert snapshot_targets(cfg, Project(tmp_path)) == [folder], "a retrain versions the folder, not its files"
    hub = load_config(None, ["data.name=sciq"])
    assert source_files(hub, Project(tmp_path)) == [] and snapshot_targets(hub, Project(tmp_path)) == []

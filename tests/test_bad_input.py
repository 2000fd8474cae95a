"""The bad-input matrix: every case fails before any training with one line that names the file,
row or key, a non-zero exit, nothing half-written, no model version registered, no alias moved.

Cases that a user reaches through `w2s run` go through the real CLI against one shared project
whose registry already holds a version with `champion` and `challenger` aliases, so "no alias
moved" is observable. Cases no user input reaches directly (weak probabilities, weak-label ids)
are driven through the pipeline step that owns the check.
(More CLI cases -- unknown label, empty file, NaN text, unknown key, missing file -- are in
tests/test_cli_errors.py.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s.errors import DataError, ValidationFailed

from conftest import make_project, publish

MODEL = "w2s-test"  # TINY_CONFIG's registry.model_name


def _good_rows(n: int = 700) -> list[dict]:
    return [{"id": f"r{i}", "text": f"sample text number {i} about {'cats' if i % 2 else 'dogs'}",
             "label": "pos" if i % 2 else "neg"} for i in range(n)]


def _csv(path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(path, index=False)


def _jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def _malformed_csv(root: Path) -> None:
    text = (root / "ok.csv").read_text().splitlines()
    text.insert(4, 'r900,"an extra field",pos,surplus')  # file line 5
    (root / "bad.csv").write_text("\n".join(text) + "\n")


def _malformed_jsonl(root: Path) -> None:
    lines = [json.dumps(r) for r in _good_rows()]
    lines[3] = '{"id": "r3", "text": "cut off", "label": '  # file line 4
    _jsonl(root / "bad.jsonl", lines)


def _malformed_parquet(root: Path) -> None:
    (root / "bad.parquet").write_bytes(b"PAR1 this is not a parquet file at all")


def _latin1(root: Path) -> None:
    rows = _good_rows()
    rows[9]["text"] = "un café crème, s'il vous plaît"  # data row 10 = file line 11
    pd.DataFrame(rows).to_csv(root / "latin1.csv", index=False, encoding="latin-1")


def _mixed_label_types(root: Path) -> None:
    rows = _good_rows()
    for i, r in enumerate(rows):
        r["label"] = i % 2  # numbers ...
    rows[6]["label"] = "1"  # ... and one string that would silently merge with class 1
    _jsonl(root / "mixed.jsonl", [json.dumps(r) for r in rows])


def _single_class(root: Path) -> None:
    _csv(root / "one-class.csv", [{**r, "label": "pos"} for r in _good_rows()])


def _duplicate_ids(root: Path) -> None:
    rows = _good_rows()
    rows[20]["id"] = "r10"
    _csv(root / "dup-ids.csv", rows)


def _few_unique_texts(root: Path) -> None:
    # 700 rows, enough for the split sizes, but only 100 distinct texts survive deduplication
    _csv(root / "dups.csv", [{**r, "text": f"repeated text {i % 100}", "label": "pos" if i % 100 % 2 else "neg"}
                             for i, r in enumerate(_good_rows())])


def _outside_file(root: Path) -> None:
    _csv(root.parent / "outside.csv", _good_rows())


CASES = {
    "malformed-csv": (_malformed_csv, ["data.path=bad.csv", "data.id_column=id"],
                      "bad.csv: cannot parse CSV: Error tokenizing data. C error: Expected 3 fields in line 5, saw 4"),
    "malformed-jsonl": (_malformed_jsonl, ["data.path=bad.jsonl"], "bad.jsonl: line 4: invalid JSON"),
    "malformed-parquet": (_malformed_parquet, ["data.path=bad.parquet"], "bad.parquet: cannot parse PARQUET"),
    "wrong-encoding": (_latin1, ["data.path=latin1.csv"], "latin1.csv: line 11: not UTF-8 text"),
    "misnamed-column": (lambda root: None, ["data.path=ok.csv", "data.label_column=sentiment"],
                        "ok.csv: no column 'sentiment' (data.label_column); columns are: id, text, label"),
    "mixed-label-types": (_mixed_label_types, ["data.path=mixed.jsonl"],
                          "mixed.jsonl: column 'label' (data.label_column) mixes value types: "
                          "number at line 1 (0), string at line 7 ('1')"),
    "single-class": (_single_class, ["data.path=one-class.csv"],
                     "expect_column_unique_value_count_to_be_between on column 'label' (observed 1)"),
    "duplicate-ids": (_duplicate_ids, ["data.path=dup-ids.csv", "data.id_column=id"],
                      "expect_column_values_to_be_unique on column 'id' (2 unexpected; e.g. 'r10'"),
    "empty-splits-after-dedupe": (_few_unique_texts, ["data.path=dups.csv"],
                                  "but the data has 100 rows, after dropping 600 duplicate texts (data.dedupe)"),
    "unknown-weak-model": (lambda root: None, ["weak.kind=encoder", "weak.encoder.model=no-such-org/weak-model"],
                           "model 'no-such-org/weak-model' is not a bundled alias"),
    "path-escapes-project": (_outside_file, ["data.path=data/../../outside.csv"],
                             "data.path 'data/../../outside.csv' escapes the project folder"),
}


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path) -> Path:
    """One project for every CLI case (they never get past validation), with a registered
    version that already carries the `champion` and `challenger` aliases."""
    from mlflow import MlflowClient

    from w2s.ops import tracking
    from w2s.project import Project

    root = make_project(tmp_path_factory.mktemp("bad-input") / "proj", bundled_dir)
    _csv(root / "ok.csv", _good_rows())
    project = Project(root)
    uri = project.tracking_uri()
    project.state.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name("w2s")
    exp_id = exp.experiment_id if exp else client.create_experiment("w2s", project.artifact_root())
    run = client.create_run(exp_id)
    client.log_text(run.info.run_id, "placeholder", "model/README.txt")
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id).version
    for alias in ("champion", "challenger"):
        client.set_registered_model_alias(MODEL, alias, version)
    assert tracking.LINEAGE_TAGS  # the module the CLI logs through imports cleanly
    return root


def _registry_state(root: Path) -> dict:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.w2s' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    return {m.name: (sorted(v.version for v in client.search_model_versions(f"name='{m.name}'")), m.aliases)
            for m in client.search_registered_models()}


def _written(root: Path) -> dict[str, list[str]]:
    """What a failed run must not leave: temp files, cache entries, weak labels, metrics.json."""
    skip = {".git", ".dvc"}
    files = [p for p in root.rglob("*") if not (set(p.relative_to(root).parts[:1]) & skip)]
    cache = root / ".w2s" / "cache"
    return {
        "temp": sorted(str(p.relative_to(root)) for p in files if p.name.endswith(".tmp")),
        "cache": sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else [],
        "weak_labels": sorted(p.name for p in (root / "weak_labels").glob("*")),
        "metrics": [p.name for p in [root / "metrics.json"] if p.exists()],
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_with_one_line_and_leaves_no_trace(shared_project, monkeypatch, capsys, case):
    from cli.main import main

    setup, sets, message = CASES[case]
    monkeypatch.setenv("W2S_PROJECT_DIR", str(shared_project))
    monkeypatch.chdir(shared_project)
    setup(shared_project)
    before = _registry_state(shared_project)
    args = ["run"]
    for s in sets:
        args += ["--set", s]

    code = main(args)

    err = capsys.readouterr().err
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, err[-2000:]
    assert "Traceback" not in err
    assert _registry_state(shared_project) == before  # no version registered, no alias moved
    assert set(before[MODEL][1]) == {"champion", "challenger"}  # there were aliases to move
    assert _written(shared_project) == {"temp": [], "cache": [], "weak_labels": [], "metrics": []}


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


# -- weak labels: no user input writes them, so the step that owns the gate is driven directly --

def _label_step(tmp_path: Path, probs: list[list[float]], pred_ids: list[str] | None = None):
    from w2s.core.refs import ModelRef, SplitsRef, TableRef

    splits = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "text": ["ta", "tb", "tc", "td", "te"],
                           "label": ["x", "y", "x", "y", "x"],
                           "split": ["weak_train", "transfer", "transfer", "val", "test"]})
    splits.to_parquet(tmp_path / "splits.parquet", index=False)
    weak_dir = tmp_path / "weak"
    weak_dir.mkdir()
    ids = pred_ids or ["b", "c", "d", "e"]
    pd.DataFrame({"id": ids, "split": ["transfer", "transfer", "val", "test"],
                  "probs": probs}).to_parquet(weak_dir / "preds.parquet", index=False)
    return (SplitsRef(str(tmp_path / "splits.parquet"), "m", ["x", "y"], {}),
            ModelRef("weak", str(weak_dir), "k" * 16, False, {"kind": "tfidf"}),
            TableRef("t", "d" * 32, ["x", "y"], 5, {}, {}))


GOOD = [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.6, 0.4]]


@pytest.mark.parametrize("bad_row, column", [
    ([float("nan"), 0.5], "expect_column_values_to_not_be_null on column 'prob_min'"),
    ([-0.2, 1.2], "expect_column_values_to_be_between on column 'prob_min'"),
    ([0.7, 0.7], "expect_column_values_to_be_between on column 'prob_sum'"),
], ids=["nan", "negative", "not-normalised"])
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
    from w2s.config import DataConfig
    from w2s.core.data.sources import read_source
    from w2s.project import Project

    rows = [json.dumps({"text": f"t{i}", "label": "pos"}) for i in range(5)]
    rows[2] = json.dumps({"text": "t2", "label": ["pos", "neg"]})
    _jsonl(tmp_path / "d.jsonl", ["", *rows])  # a blank first line: line numbers stay the file's
    with pytest.raises(DataError, match=r"d.jsonl: column 'label' \(data.label_column\) holds a list at line 4"):
        read_source(DataConfig(path="d.jsonl"), Project(tmp_path))


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    from w2s.config import DataConfig
    from w2s.core.data.sources import read_source
    from w2s.project import Project

    (tmp_path / "d.csv").write_bytes("text,label\ncafé,pos\nthé,neg\n".encode("utf-8-sig"))
    table, _ = read_source(DataConfig(path="d.csv"), Project(tmp_path))
    assert table["text"].tolist() == ["café", "thé"]
    assert np.array_equal(table["label"].to_numpy(), np.array(["pos", "neg"], dtype=object))

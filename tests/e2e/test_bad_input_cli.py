"""The bad-input matrix through the real CLI: every case fails with one line naming the file, row or key,
exit code 2, and leaves no trace in a project whose registry already holds aliased versions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_project

MODEL = "w2s-test"  # TINY_CONFIG's registry.model_name


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
    _csv(
        root / "dups.csv",
        [
            {**r, "text": f"repeated text {i % 100}", "label": "pos" if i % 100 % 2 else "neg"}
            for i, r in enumerate(_good_rows())
        ],
    )


def _outside_file(root: Path) -> None:
    _csv(root.parent / "outside.csv", _good_rows())


CASES = {
    "malformed-csv": (
        _malformed_csv,
        ["data.path=bad.csv", "data.id_column=id"],
        "bad.csv: line 5: cannot parse CSV: expected 3 fields, saw 4",
    ),
    "malformed-jsonl": (_malformed_jsonl, ["data.path=bad.jsonl"], "bad.jsonl: line 4: invalid JSON"),
    "malformed-parquet": (_malformed_parquet, ["data.path=bad.parquet"], "bad.parquet: cannot parse PARQUET"),
    "wrong-encoding": (_latin1, ["data.path=latin1.csv"], "latin1.csv: line 11: not UTF-8 text"),
    "misnamed-column": (
        lambda root: None,
        ["data.path=ok.csv", "data.label_column=sentiment"],
        "ok.csv: no column 'sentiment' (data.label_column); columns are: id, text, label",
    ),
    "mixed-label-types": (
        _mixed_label_types,
        ["data.path=mixed.jsonl"],
        "mixed.jsonl: column 'label' (data.label_column) mixes value types: "
        "number at line 1 (0), string at line 7 ('1')",
    ),
    "single-class": (
        _single_class,
        ["data.path=one-class.csv"],
        "expect_column_unique_value_count_to_be_between on column 'label' (observed 1)",
    ),
    "duplicate-ids": (
        _duplicate_ids,
        ["data.path=dup-ids.csv", "data.id_column=id"],
        "expect_column_values_to_be_unique on column 'id' (2 unexpected; e.g. 'r10'",
    ),
    "empty-splits-after-dedupe": (
        _few_unique_texts,
        ["data.path=dups.csv"],
        "but the data has 100 rows; scaled to fit, test would hold 22 rows, below split.min_test=100, "
        "after dropping 600 duplicate texts (data.dedupe)",
    ),
    "unknown-weak-model": (
        lambda root: None,
        ["weak.kind=encoder", "weak.encoder.model=no-such-org/weak-model"],
        "model 'no-such-org/weak-model' is not a bundled alias",
    ),
    "path-escapes-project": (
        _outside_file,
        ["data.path=data/../../outside.csv"],
        "data.path 'data/../../outside.csv' escapes the project folder",
    ),
    # registering straight onto the gate's alias would ship the student ungated
    "registers-as-champion": (
        lambda root: None,
        ["registry.alias=champion"],
        "registry.alias 'champion' is promotion.champion_alias, which only the promotion gate may move",
    ),
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
    return {
        m.name: (sorted(v.version for v in client.search_model_versions(f"name='{m.name}'")), m.aliases)
        for m in client.search_registered_models()
    }


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


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_with_one_line_and_leaves_no_trace(shared_project, monkeypatch, capsys, case):
    from w2s.cli.main import main

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

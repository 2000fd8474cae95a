import json
import re
from pathlib import Path

import pandas as pd
import pytest

from w2s.errors import ValidationFailed
from w2s.ops.data_docs import write_data_docs
from w2s.ops.validation import GateFailed, validate_raw, validate_splits, validate_weak_labels
from w2s.pipeline.publish import record_beside


def _raw(**changes):
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "text": ["one", "two", "three"],
            "label": ["x", "y", "x"],
            "group": [None] * 3,
            "pair": [None] * 3,
        }
    )
    for col, values in changes.items():
        df[col] = values
    return df


def test_clean_table_passes():
    report = validate_raw(_raw(), ["x", "y"])
    assert report.success and report.evaluated == 9


@pytest.mark.parametrize(
    "changes, declared, expected",
    [
        ({"text": ["one", None, "three"]}, None, "expect_column_values_to_not_be_null on column 'text'"),
        ({"text": ["one", "   ", "three"]}, None, "expect_column_values_to_not_match_regex on column 'text'"),
        ({"id": ["a", "a", "c"]}, None, "expect_column_values_to_be_unique on column 'id'"),
        ({"label": ["x", "z", "x"]}, ["x", "y"], "expect_column_values_to_be_in_set on column 'label'"),
        ({"label": ["x", "x", "x"]}, None, "expect_column_unique_value_count_to_be_between on column 'label'"),
    ],
)
def test_raw_gate_names_the_failed_expectation_and_column(changes, declared, expected):
    report = validate_raw(_raw(**changes), declared)
    assert not report.success
    assert any(f.startswith(expected) for f in report.failures), report.failures
    with pytest.raises(ValidationFailed, match="validation gate 'raw_table' failed"):
        report.raise_if_failed()


def test_schema_check_catches_missing_columns():
    report = validate_raw(_raw().drop(columns="group"), None)
    assert any("expect_table_columns_to_match_set" in f for f in report.failures)


def test_split_gate_catches_test_text_seen_in_training():
    splits = pd.DataFrame(
        {
            "id": list("abcd"),
            "text": ["p", "q", "r", "p"],
            "label": ["x", "y", "x", "y"],
            "split": ["weak_train", "transfer", "val", "test"],
        }
    )
    report = validate_splits(splits, ["x", "y"])
    assert any("expect_column_values_to_be_in_set on column 'in_training_split'" in f for f in report.failures)
    assert "test ids whose text is in a training split: d" in report.failures
    splits.loc[3, "text"] = "s"
    assert validate_splits(splits, ["x", "y"]).success


@pytest.mark.parametrize(
    "probs, column",
    [
        ([[0.5, 0.5], [0.7, 0.7]], "prob_sum"),
        ([[0.5, 0.5], [-0.2, 1.2]], "prob_min"),
        ([[0.5, 0.5], [float("nan"), 1.0]], "prob_min"),
        ([[0.5, 0.5], [1.0]], "prob_len"),
    ],
)
def test_weak_label_gate_catches_bad_probabilities(probs, column):
    labels = pd.DataFrame({"id": ["a", "b"], "text": ["t", "u"], "weak_probs": probs, "weak_label": [0, 1]})
    report = validate_weak_labels(labels, 2)
    assert any(f"column '{column}'" in f for f in report.failures), report.failures


def test_weak_label_gate_passes_valid_labels():
    labels = pd.DataFrame(
        {"id": ["a", "b"], "text": ["t", "u"], "weak_probs": [[0.2, 0.8], [0.9, 0.1]], "weak_label": [1, 0]}
    )
    assert validate_weak_labels(labels, 2).success


def test_weak_label_gate_reports_missing_columns_instead_of_crashing():
    report = validate_weak_labels(pd.DataFrame({"id": ["a"], "text": ["t"]}), 2)
    assert report.failures == ["missing column(s) ['weak_label', 'weak_probs']"]


def _pages(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*.html")}


def _status(page: str) -> str:
    """The validation page's overall status, as its header reads it."""
    found = re.search(r"Status:</span>\s*<i[^>]*></i>\s*(\w+)", page)
    assert found, "no status in the page header"
    return found.group(1)


def _row(page: str, text: str) -> str:
    """The validation table's row (<tr>...</tr>) that renders the expectation reading `text`."""
    rows = [r for r in re.findall(r"<tr\b.*?</tr>", page, flags=re.S) if text in r]
    assert len(rows) == 1, f"{len(rows)} rows read {text!r}"
    return rows[0]


def test_data_docs_of_a_passing_gate_show_every_expectation_succeeded(tmp_path):
    index = write_data_docs(validate_raw(_raw(), ["x", "y"]), tmp_path / "docs")
    assert index == tmp_path / "docs" / "index.html"
    pages = _pages(tmp_path / "docs")
    validations = {k: v for k, v in pages.items() if k.startswith("validations/")}
    assert {k.split("/")[1] for k in validations} == {"raw_table_rows", "raw_table_whole"}
    assert all(k in pages["index.html"] for k in validations), "the index links every validation page"
    assert not (tmp_path / "docs" / "static").exists(), "4 MB of GX fonts and images stay out"
    for page in validations.values():
        assert _status(page) == "Succeeded" and "fa-check-circle text-success" in page
        assert "fa-times text-danger" not in page
    suites = pages["expectations/raw_table_rows.html"] + pages["expectations/raw_table_whole.html"]
    for gx_type in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_unique"):
        assert f"GX type: <code>{gx_type}</code>" in suites


def test_data_docs_compile_their_templates_once_per_process(tmp_path, monkeypatch):
    """GX gives each page view a Jinja environment of its own; ours share compiled templates, so
    a second build (the next gate, the next run) renders every page without compiling one."""
    import jinja2

    report = validate_raw(_raw(), ["x", "y"])
    write_data_docs(report, tmp_path / "first")
    compiled: list[str | None] = []
    compile_ = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        compiled.append(name)
        return compile_(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    write_data_docs(report, tmp_path / "second")
    assert compiled == []
    first, second = _pages(tmp_path / "first"), _pages(tmp_path / "second")
    kinds = [sorted(k.split("/")[:2] for k in pages) for pages in (first, second)]  # the rest is the run time
    assert kinds[0] == kinds[1] and len(first) == 5
    assert _status(second[next(k for k in second if k.startswith("validations/"))]) == "Succeeded"


def test_data_docs_of_a_failed_gate_show_the_failed_expectation_failed(tmp_path):
    with pytest.raises(ValidationFailed, match="validation gate 'raw_table' failed") as info:
        validate_raw(_raw(id=["a", "a", "c"]), ["x", "y"]).raise_if_failed()
    assert isinstance(info.value, GateFailed) and info.value.gate.results, "the failure carries the GX results"
    # the recorder of the DVC stages: the JSON report and its Data Docs beside it
    record_beside(tmp_path, data_docs=True)("gate_raw_table.json", info.value.gate)
    assert json.loads((tmp_path / "gate_raw_table.json").read_text()) == info.value.report
    pages = _pages(tmp_path / "data_docs" / "raw_table")
    whole = next(v for k, v in pages.items() if k.startswith("validations/raw_table_whole/"))
    assert "fa-times text-danger" in _row(whole, "values must be unique")
    assert "fa-check-circle text-success" in _row(whole, "unique values")  # the label count passed
    assert _status(whole) == "Failed"
    assert "expect_column_values_to_be_unique" in pages["expectations/raw_table_whole.html"]


def test_a_failed_gate_step_records_its_data_docs_before_it_raises(tmp_path):
    from w2s.config import load_config
    from w2s.core.cache import ArtifactCache
    from w2s.core.refs import TableRef
    from w2s.pipeline.sequence import StepEnv, step
    from w2s.project import Project

    _raw(id=["a", "a", "c"]).to_parquet(tmp_path / "table.parquet", index=False)
    table = TableRef(str(tmp_path / "table.parquet"), "", ["x", "y"], 3, {}, {})
    env = StepEnv(Project(tmp_path), tmp_path, tmp_path, ArtifactCache(tmp_path / "cache"), data_docs=True)
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_unique on column 'id'"):
        step("validate").run(env, load_config(), table)
    assert json.loads((tmp_path / "gate_raw_table.json").read_text())["failures"]
    pages = _pages(tmp_path / "data_docs" / "raw_table")
    assert _status(next(v for k, v in pages.items() if k.startswith("validations/raw_table_whole/"))) == "Failed"


def test_a_gate_that_ran_no_gx_suite_has_no_data_docs(tmp_path):
    report = validate_weak_labels(pd.DataFrame({"id": ["a"], "text": ["t"]}), 2)
    assert write_data_docs(report, tmp_path / "docs") is None and not (tmp_path / "docs").exists()


def test_the_results_key_is_the_same_for_the_same_findings_and_differs_for_others():
    from w2s.ops.data_docs import results_key

    first, again = validate_raw(_raw(), ["x", "y"]), validate_raw(_raw(), ["x", "y"])
    assert results_key(first) == results_key(again) is not None  # GX's random ids and run times aside
    failing = validate_raw(_raw(label=["x", "y", "z"]), ["x", "y"])
    other_failure = validate_raw(_raw(label=["x", "z", "z"]), ["x", "y"])
    assert len({results_key(first), results_key(failing), results_key(other_failure)}) == 3

import pandas as pd
import pytest

from w2s.errors import ValidationFailed
from w2s.ops.validation import validate_raw, validate_splits, validate_weak_labels


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

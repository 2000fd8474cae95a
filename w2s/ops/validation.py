"""Great Expectations gates on the raw table, the splits and the weak-label table.

GX is imported inside `run_suite` (its import costs seconds); an ephemeral context is used so
nothing is written to disk. A failed gate raises `ValidationFailed` naming every failed
expectation and its column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from w2s.core.data.sources import COLUMNS
from w2s.errors import ValidationFailed

PROB_TOL = 1e-4


@dataclass
class GateReport:
    """Outcome of one gate: which expectations ran and which failed (as readable lines)."""

    name: str
    evaluated: int
    failures: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.name, "evaluated": self.evaluated, "failures": self.failures}

    def raise_if_failed(self) -> None:
        if self.failures:
            raise ValidationFailed(f"validation gate '{self.name}' failed: " + "; ".join(self.failures), self.as_dict())


def _describe(res: Any) -> str:
    cfg = res.expectation_config
    kwargs = cfg.kwargs
    column = kwargs.get("column")
    where = f" on column '{column}'" if column else ""
    detail = res.result or {}
    bits = []
    if "unexpected_count" in detail and detail["unexpected_count"]:
        bits.append(f"{detail['unexpected_count']} unexpected")
        sample = detail.get("partial_unexpected_list") or []
        if sample:
            bits.append("e.g. " + ", ".join(repr(v)[:40] for v in sample[:3]))
    elif "observed_value" in detail:
        bits.append(f"observed {str(detail['observed_value'])[:80]}")
    suffix = f" ({'; '.join(bits)})" if bits else ""
    return f"{cfg.type}{where}{suffix}"


def run_suite(name: str, df: pd.DataFrame, expectations: list[tuple[str, dict[str, Any]]]) -> GateReport:
    """Validate `df` against `(ExpectationClassName, kwargs)` pairs in an ephemeral GX context."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins this module's logger at INFO, which narrates a temp folder on every context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(f"w2s-{name}").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name=name)
    for cls_name, kwargs in expectations:
        suite.add_expectation(getattr(gxe, cls_name)(**kwargs))
    result = batch.validate(suite, result_format="SUMMARY")
    failures = [_describe(r) for r in result.results if not r.success]
    return GateReport(name, len(result.results), failures)


def raw_table_expectations(declared_labels: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """Schema, nulls, empty texts, unique ids, at least two classes, the declared label set."""
    exp: list[tuple[str, dict[str, Any]]] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": list(COLUMNS), "exact_match": True}),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToNotBeNull", {"column": "id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "text"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
        ("ExpectColumnValuesToBeUnique", {"column": "id"}),
        ("ExpectColumnValuesToNotMatchRegex", {"column": "text", "regex": r"^\s*$"}),
        ("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2}),
    ]
    if declared_labels:
        exp.append(("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": list(declared_labels)}))
    return exp


def validate_raw(table: pd.DataFrame, declared_labels: list[str] | None) -> GateReport:
    """The gate on the canonical table, before anything is split or trained."""
    return run_suite("raw_table", table, raw_table_expectations(declared_labels))


EVAL_SPLITS = ("test", "ood_test")


def validate_splits(splits: pd.DataFrame, names: list[str]) -> GateReport:
    """No test (or ood_test) text appears in a training split; every split uses only known labels."""
    held = splits["split"].isin(EVAL_SPLITS)
    test = splits[held][["id", "text", "label"]]
    train_texts = splits.loc[~held, "text"].unique().tolist()
    exp = [
        ("ExpectColumnValuesToNotBeInSet", {"column": "text", "value_set": train_texts}),
        ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": names}),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
    ]
    report = run_suite("split_overlap", test.reset_index(drop=True), exp)
    counts = splits["split"].value_counts()
    for split in ("weak_train", "transfer", "val", "test"):
        if counts.get(split, 0) == 0:
            report.failures.append(f"split '{split}' is empty")
    return report


def validate_weak_labels(labels: pd.DataFrame, num_classes: int) -> GateReport:
    """Schema, unique ids, probabilities in [0, 1] that sum to 1, argmax labels in range."""
    missing = {"id", "text", "weak_probs", "weak_label"} - set(labels.columns)
    if missing:
        return GateReport("weak_labels", 0, [f"missing column(s) {sorted(missing)}"])
    probs = labels["weak_probs"]
    view = pd.DataFrame(
        {
            "id": labels["id"],
            "text": labels["text"],
            "weak_label": labels["weak_label"],
            "prob_len": probs.map(len),
            "prob_min": probs.map(lambda p: float(np.min(p)) if len(p) else np.nan),
            "prob_max": probs.map(lambda p: float(np.max(p)) if len(p) else np.nan),
            "prob_sum": probs.map(lambda p: float(np.sum(p))),
        }
    )
    exp: list[tuple[str, dict[str, Any]]] = [
        ("ExpectColumnValuesToNotBeNull", {"column": "id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "text"}),
        ("ExpectColumnValuesToBeBetween", {"column": "prob_len", "min_value": num_classes, "max_value": num_classes}),
        ("ExpectColumnValuesToNotBeNull", {"column": "prob_min"}),
        ("ExpectColumnValuesToBeBetween", {"column": "prob_min", "min_value": 0.0, "max_value": 1.0}),
        ("ExpectColumnValuesToBeBetween", {"column": "prob_max", "min_value": 0.0, "max_value": 1.0}),
        ("ExpectColumnValuesToBeBetween", {"column": "prob_sum", "min_value": 1 - PROB_TOL, "max_value": 1 + PROB_TOL}),
        ("ExpectColumnValuesToBeInSet", {"column": "weak_label", "value_set": list(range(num_classes))}),
    ]
    return run_suite("weak_labels", view, exp)

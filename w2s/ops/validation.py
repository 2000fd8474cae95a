"""Great Expectations gates on the raw table, the splits and the weak-label table.

GX is imported inside `run_suite` (its import costs seconds); an ephemeral context is used so
nothing is written to disk. A failed gate raises `ValidationFailed` (a `GateFailed`) naming every
failed expectation and its column. A report keeps GX's own validation results, so that
`w2s.ops.data_docs` can render them as Data Docs whether the gate passed or not.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.core.data.file_readers import BATCH_ROWS
from w2s.core.data.ingest import iter_table
from w2s.core.data.sources import COLUMNS
from w2s.core.data.split import text_digests
from w2s.errors import ValidationFailed

PROB_TOL = 1e-4
# Batches of one table whose GX results a report keeps for its Data Docs: the first batch and the
# first failing ones, since a page per batch of a large table would be hundreds of pages.
DOCS_BATCHES = 4


@dataclass(frozen=True)
class SuiteResult:
    """One GX validation result a gate produced, and the batch of rows it covers."""

    batch: str  # "all_rows", or "batch_<n>" (1-based) of a table validated batch by batch
    result: Any  # great_expectations' ExpectationSuiteValidationResult


@dataclass
class GateReport:
    """Outcome of one gate: which expectations ran and which failed (as readable lines), and the
    GX validation results behind them (left out of `as_dict`: they are for Data Docs)."""

    name: str
    evaluated: int
    failures: list[str] = field(default_factory=list)
    results: list[SuiteResult] = field(default_factory=list, repr=False, compare=False)

    @property
    def success(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.name, "evaluated": self.evaluated, "failures": self.failures}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        """The report `as_dict` describes (without GX results: those are not in the dict)."""
        return cls(data.get("gate", ""), data.get("evaluated", 0), list(data.get("failures", [])))

    def raise_if_failed(self) -> None:
        if self.failures:
            message = f"validation gate '{self.name}' failed: " + "; ".join(self.failures)
            raise GateFailed(message, self.as_dict(), self)


class GateFailed(ValidationFailed):
    """The `ValidationFailed` of a gate, carrying its whole report: whoever records the failure
    can still render the GX results of the failed gate."""

    def __init__(self, message: str, report: dict | None = None, gate: GateReport | None = None) -> None:
        super().__init__(message, report)
        self.gate = gate or GateReport.from_dict(self.report)


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


Expectations = list[tuple[str, dict[str, Any]]]


def ephemeral_context() -> Any:
    """A GX context held in memory, quiet: no progress bars, no line per context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins this module's logger at INFO, which narrates a temp folder on every context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(name: str, data: pd.DataFrame | Iterable[pd.DataFrame], expectations: Expectations) -> GateReport:
    """Validate `data` against `(ExpectationClassName, kwargs)` pairs in an ephemeral GX context.

    `data` is a frame or an iterable of frames (batches of one table, validated one after another
    with the same suite): an expectation fails when it fails on any batch, and its line says how
    many batches it failed on. Only row-wise expectations mean the same on batches as on the table.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = ephemeral_context()
    batches = context.data_sources.add_pandas(f"w2s-{name}").add_dataframe_asset(name)
    definition = batches.add_batch_definition_whole_dataframe("all")
    suite = gx.ExpectationSuite(name=name)
    for cls_name, kwargs in expectations:
        suite.add_expectation(getattr(gxe, cls_name)(**kwargs))
    failed: dict[str, list[str]] = {}
    kept: list[SuiteResult] = []
    one_frame = isinstance(data, pd.DataFrame)
    for i, frame in enumerate([data] if one_frame else data):
        result = definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format="SUMMARY")
        if i == 0 or (not result.success and len(kept) < DOCS_BATCHES):
            kept.append(SuiteResult("all_rows" if one_frame else f"batch_{i + 1}", result))
        for r in result.results:
            if not r.success:
                key = _describe(r).split(" (")[0]  # the expectation and its column
                failed.setdefault(key, []).append(_describe(r))
    lines = [d[0] if len(d) == 1 else f"{d[0]} (in {len(d)} batches; the first shown)" for d in failed.values()]
    return GateReport(name, len(expectations), lines, kept)


def raw_row_expectations(declared_labels: list[str] | None) -> Expectations:
    """What every row of the raw table must satisfy, batch by batch: the schema, no nulls, no empty
    texts, the declared label set."""
    exp: Expectations = [
        ("ExpectTableColumnsToMatchSet", {"column_set": list(COLUMNS), "exact_match": True}),
        ("ExpectColumnValuesToNotBeNull", {"column": "id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "text"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
        ("ExpectColumnValuesToNotMatchRegex", {"column": "text", "regex": r"^\s*$"}),
    ]
    if declared_labels:
        exp.append(("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": list(declared_labels)}))
    return exp


# The raw-table gate's two suites, named apart so that their Data Docs pages are told apart.
ROW_SUITE, TABLE_SUITE = "raw_table_rows", "raw_table_whole"
TABLE_EXPECTATIONS: Expectations = [  # over the whole table's id and label columns at once
    ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
    ("ExpectColumnValuesToBeUnique", {"column": "id"}),
    ("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2}),
]


def validate_raw(table: pd.DataFrame, declared_labels: list[str] | None) -> GateReport:
    """The gate on the canonical table, before anything is split or trained."""
    return _raw_report(
        run_suite(ROW_SUITE, table, raw_row_expectations(declared_labels)),
        run_suite(TABLE_SUITE, table[[c for c in ("id", "label") if c in table.columns]], TABLE_EXPECTATIONS),
    )


def validate_raw_file(path: str | Path, declared_labels: list[str] | None, batch_rows: int = BATCH_ROWS) -> GateReport:
    """`validate_raw` on the table file without loading its texts or ids at once: the row-wise
    expectations run batch by batch; the table-wide ones on a compact frame of a 64-bit hash per
    id and the labels as a categorical (9 bytes a row). A repeated hash is then confirmed on the
    ids themselves, so two distinct ids that collide are never reported, and a failure names ids."""
    import pyarrow.parquet as pq
    from pandas.api.types import union_categoricals

    empty = pq.read_schema(path).empty_table().to_pandas()
    rows = iter_table(path, batch_rows=batch_rows)
    first = next(rows, empty)
    row_report = run_suite(ROW_SUITE, itertools.chain([first], rows), raw_row_expectations(declared_labels))
    hashes, labels = [np.zeros(0, dtype=np.uint64)], []
    for part in iter_table(path, ["id", "label"], batch_rows):
        hashes.append(_id_hashes(part["id"]))
        labels.append(pd.Categorical(part["label"].astype(object)))
    label = union_categoricals(labels, ignore_order=True) if labels else pd.Categorical([])
    compact = pd.DataFrame({"id": np.concatenate(hashes), "label": label})
    table_report = run_suite(TABLE_SUITE, compact, TABLE_EXPECTATIONS)
    named = [_named_ids(f, compact["id"], path, batch_rows) for f in table_report.failures]
    table_report.failures = [f for f in named if f]
    return _raw_report(row_report, table_report)


UNIQUE_IDS = "expect_column_values_to_be_unique on column 'id'"


def _id_hashes(ids: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(ids.astype(object).where(ids.notna(), None), index=False).to_numpy()


def _named_ids(failure: str, hashes: pd.Series, path: str | Path, batch_rows: int) -> str:
    """The id-uniqueness failure, with the repeated ids themselves (read back for the repeated
    hashes only); "" when the repeats were only hash collisions of distinct ids."""
    if not failure.startswith(UNIQUE_IDS):
        return failure
    repeated = set(hashes[hashes.duplicated(keep=False)].tolist())
    parts = iter_table(path, ["id"], batch_rows)
    ids = pd.concat([p["id"][np.isin(_id_hashes(p["id"]), list(repeated))] for p in parts])
    dup = ids[ids.duplicated(keep=False) & ids.notna()]
    if dup.empty:
        return ""
    sample = ", ".join(repr(v)[:40] for v in dup.drop_duplicates().head(3))
    return f"{UNIQUE_IDS} ({len(dup)} unexpected; e.g. {sample})"


def _raw_report(rows: GateReport, table: GateReport) -> GateReport:
    return GateReport(
        "raw_table", rows.evaluated + table.evaluated, rows.failures + table.failures, rows.results + table.results
    )


EVAL_SPLITS = ("test", "ood_test")


def validate_splits(splits: pd.DataFrame, names: list[str]) -> GateReport:
    """No test (or ood_test) text appears in a training split; every split uses only known labels.

    The overlap is a hash join on the texts' md5s (not a GX value set of every training text):
    GX then checks a per-row flag, so the gate stays cheap however large the training splits are.
    """
    held = splits["split"].isin(EVAL_SPLITS).to_numpy()
    digests = text_digests(splits["text"])
    train = pd.Index(digests[~held].unique())
    test = splits.loc[held, ["id", "label"]].reset_index(drop=True)
    # The text itself stays out of the frame GX sees: a failure names the leaking test ids.
    test["in_training_split"] = digests[held].isin(train).to_numpy()
    exp: Expectations = [
        ("ExpectColumnValuesToBeInSet", {"column": "in_training_split", "value_set": [False]}),
        ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": names}),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
    ]
    report = run_suite("split_overlap", test, exp)
    leaked = test.loc[test["in_training_split"], "id"].tolist()
    if leaked:
        report.failures.append(f"test ids whose text is in a training split: {', '.join(map(str, leaked[:5]))}")
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

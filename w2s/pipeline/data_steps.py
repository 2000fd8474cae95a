"""The data steps: ingest the source into the canonical table, gate it (GX), and draw the
deterministic splits (gated on test/train text overlap). They stream: a table far larger than
the splits is never held in memory whole."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.data.ingest import ingest_table, read_rows
from w2s.core.data.sources import COLUMNS, table_md5
from w2s.core.data.split import (
    SPLITS,
    assign_splits,
)
from w2s.core.refs import (
    SplitsRef,
    TableRef,
)
from w2s.errors import DataError
from w2s.io import atomic_path
from w2s.ops.validation import (
    GateReport,
    validate_raw_file,
    validate_splits,
)
from w2s.project import Project


def ingest(cfg: Config, project: Project, out_dir: Path) -> TableRef:
    """Resolve the data source to the canonical table and write it as Parquet, streamed: a large
    file is never held in memory whole."""
    done = ingest_table(cfg.data, project, out_dir / "table.parquet")
    names = list(cfg.data.labels) if cfg.data.labels else done.labels
    return TableRef(str(out_dir / "table.parquet"), done.md5, names, done.rows, asdict(done.source), done.stats)


def validate_table(ref: TableRef, cfg: Config) -> GateReport:
    """The raw-data gate; raises `ValidationFailed` listing every failed expectation."""
    report = validate_raw_file(ref.path, cfg.data.labels)
    report.raise_if_failed()
    return report


SPLIT_BY = ["label", "group", "pair"]  # what assign_splits reads: the texts wait until the rows are chosen
POSITION = "_position"


def make_splits(ref: TableRef, cfg: Config, out_dir: Path) -> tuple[SplitsRef, GateReport]:
    """Deterministic splits for `cfg.seed`, gated on test/train text overlap.

    The splits are drawn over the table's labels, groups and pair keys alone; only the chosen
    rows' ids and texts are then read, so a table far larger than the splits is never loaded.
    """
    frame = pd.read_parquet(ref.path, columns=SPLIT_BY).assign(**{POSITION: lambda f: np.arange(len(f))})
    try:
        chosen = assign_splits(frame, cfg.split, cfg.seed)
    except DataError as exc:
        dropped = ref.stats.get("duplicate_texts_dropped", 0)
        if not dropped:
            raise
        # a file that looked big enough may have shrunk at ingest: say why
        raise DataError(f"{exc}, after dropping {dropped} duplicate texts (data.dedupe)") from None
    rows = read_rows(ref.path, chosen[POSITION].to_numpy(), ["id", "text"])
    splits = pd.concat([rows, chosen.drop(columns=POSITION).reset_index(drop=True)], axis=1)
    splits = splits[[*COLUMNS, "split"]]
    report = validate_splits(splits, ref.label_names)
    report.raise_if_failed()
    path = out_dir / "splits.parquet"
    with atomic_path(path) as tmp:
        splits.to_parquet(tmp, index=False)
    counts = {s: int((splits["split"] == s).sum()) for s in SPLITS}
    md5 = table_md5(splits, ["id", "text", "label", "split"])
    return SplitsRef(str(path), md5, ref.label_names, counts), report

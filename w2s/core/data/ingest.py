"""Stream a data source into the canonical table file, and read that file back by batches.

A file or HF dataset is read a batch at a time. The first pass writes the canonical rows to a
scratch Parquet file and keeps, per row, only what dedupe and subsampling decide on: the md5 of
the whitespace-normalised text and (with `data.max_rows`) the md5 of the id, 32 bytes a row. The
second pass copies the kept rows into the table file and hashes them. Memory is then bounded by
one batch plus those digests, whatever the file's size. The result is the table (and data md5)
that `canonicalise` gives on the whole source in memory: tasks and the bundled corpora, whose
rows may be paired items, still go through it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.core.config import DataConfig
from w2s.core.data.file_readers import BATCH_ROWS, parquet_batches
from w2s.core.data.sources import (
    COLUMNS,
    STREAMED,
    Source,
    TableDigest,
    canonicalise,
    iter_source,
)
from w2s.core.data.split import label_names
from w2s.errors import DataError
from w2s.io import atomic_path
from w2s.project import Project


@dataclass(frozen=True)
class Ingested:
    """What ingest wrote: the table's md5, its observed labels (sorted), rows, source and counts."""

    md5: str
    labels: list[str]
    rows: int
    source: Source
    stats: dict[str, int]


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([(c, pa.string()) for c in COLUMNS])


def _normalised_digest(text: Any) -> bytes:
    return hashlib.md5(" ".join(text.split()).encode()).digest()


def _id_digest(i: Any) -> bytes:
    return hashlib.md5(str(i).encode()).digest()


def ingest_table(cfg: DataConfig, project: Project, path: Path, batch_rows: int = BATCH_ROWS) -> Ingested:
    """Write the canonical table of the configured source (deduplicated and subsampled as
    configured) to `path` as Parquet, atomically; return its md5, labels and counts."""
    batches, source = iter_source(cfg, project, batch_rows)
    if source.kind not in STREAMED:
        table, stats = canonicalise(pd.concat(list(batches), ignore_index=True), cfg)
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
        labels = label_names(table, None)
        return Ingested(TableDigest(COLUMNS).update(table).hexdigest(), labels, len(table), source, stats)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.scratch")
    try:
        texts, ids, null_text, rows_read = _first_pass(batches, scratch, cfg)
        keep, stats = _keep(texts, ids, null_text, rows_read, cfg)
        with atomic_path(path) as tmp:
            md5, labels, rows = _second_pass(scratch, tmp, keep, batch_rows)
    finally:
        scratch.unlink(missing_ok=True)
    stats["rows"] = rows
    return Ingested(md5, labels, rows, source, stats)


def _first_pass(
    batches: Iterator[pd.DataFrame], scratch: Path, cfg: DataConfig
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, int]:
    """Write every canonical row to `scratch`; return the per-row digests dedupe and subsampling need."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    nulls: list[np.ndarray] = []
    rows = 0
    with pq.ParquetWriter(scratch, _schema()) as writer:
        for frame in batches:
            writer.write_table(pa.Table.from_pandas(frame[COLUMNS], schema=_schema(), preserve_index=False))
            values = frame["text"].tolist()
            null = np.fromiter((not isinstance(t, str) for t in values), dtype=bool, count=len(values))
            texts.append(
                np.array([b"" if n else _normalised_digest(t) for t, n in zip(values, null, strict=True)], dtype="S16")
            )
            nulls.append(null)
            if cfg.max_rows is not None:
                ids.append(np.array([_id_digest(i) for i in frame["id"].tolist()], dtype="S16"))
            rows += len(frame)
    if rows == 0:
        raise DataError("the data source has no rows")
    cat = np.concatenate
    return cat(texts), (cat(ids) if cfg.max_rows is not None else None), cat(nulls), rows


def _keep(
    texts: np.ndarray, ids: np.ndarray | None, null_text: np.ndarray, rows: int, cfg: DataConfig
) -> tuple[np.ndarray, dict[str, int]]:
    """The rows the table keeps, as `canonicalise` decides them for unpaired rows: a text seen
    earlier (after whitespace normalisation) is dropped, then the `max_rows` rows first in id-hash
    order are kept (an order independent of the seed, so every seed sees the same table)."""
    stats = {"rows_read": rows}
    keep = np.ones(rows, dtype=bool)
    if cfg.dedupe:
        present = np.flatnonzero(~null_text)
        _, first = np.unique(texts[present], return_index=True)  # the first occurrence of each text
        keep[present] = False
        keep[present[first]] = True
        stats["duplicate_texts_dropped"] = int(rows - keep.sum())
    if ids is not None and cfg.max_rows is not None and keep.sum() > cfg.max_rows:
        candidates = np.flatnonzero(keep)
        chosen = candidates[np.argsort(ids[candidates], kind="stable")[: cfg.max_rows]]
        keep[:] = False
        keep[chosen] = True
    return keep, stats


def _second_pass(scratch: Path, target: Path, keep: np.ndarray, batch_rows: int) -> tuple[str, list[str], int]:
    """Copy the kept rows of `scratch` to `target`, hashing them on the way."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    digest, labels, rows, start = TableDigest(COLUMNS), set(), 0, 0
    with pq.ParquetWriter(target, _schema()) as writer:
        for batch in parquet_batches(scratch, None, batch_rows):
            mask = keep[start : start + batch.num_rows]
            start += batch.num_rows
            kept = batch.filter(pa.array(mask))
            if not kept.num_rows:
                continue
            writer.write_batch(kept)
            frame = kept.to_pandas()
            digest.update(frame)
            labels.update(frame["label"].dropna().unique().tolist())
            rows += kept.num_rows
    assert start == len(keep), "the scratch table and the keep mask disagree on the row count"
    return digest.hexdigest(), sorted(labels), rows


def iter_table(
    path: str | Path, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """The table file's rows (optionally only some columns), a batch at a time."""
    for batch in parquet_batches(path, columns, batch_rows):
        yield batch.to_pandas()


def read_rows(
    path: str | Path, positions: np.ndarray, columns: list[str], batch_rows: int = BATCH_ROWS
) -> pd.DataFrame:
    """The given row positions of the table file (any order; returned in that order), reading
    only `columns` and holding one batch at a time besides the rows taken."""
    positions = np.asarray(positions, dtype=np.int64)
    order = np.argsort(positions, kind="stable")
    wanted = positions[order]
    parts, start = [], 0
    for frame in iter_table(path, columns, batch_rows):
        lo, hi = np.searchsorted(wanted, [start, start + len(frame)])
        if hi > lo:
            parts.append(frame.iloc[wanted[lo:hi] - start])
        start += len(frame)
    if len(wanted) and (wanted[0] < 0 or wanted[-1] >= start):
        raise IndexError(f"row positions outside the table's {start} rows")
    taken = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return taken.iloc[back].reset_index(drop=True)

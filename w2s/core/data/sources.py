"""Resolve the configured data source to the canonical table `id, text, label, group, pair`.

`group` names a distribution-shift group (held out with `split.ood_groups`); `pair` keys the rows
built from one source item (`w2s.core.data.items`). Either is null where it does not apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.core.config import DataConfig
from w2s.core.data import bundled, hub, items, suite
from w2s.core.data.file_readers import (
    BATCH_ROWS,
    READERS,
    check_readable,
    read_columns,
    require_columns,
    row_name,
    rows_from,
    wanted_columns,
)
from w2s.errors import DataError
from w2s.io import file_md5
from w2s.project import Project

COLUMNS = ["id", "text", "label", "group", items.PAIR]


@dataclass(frozen=True)
class Source:
    """Where the table came from, for lineage: a kind (file, hf, task, bundled), a location and the
    md5 of its bytes (for data loaded from the hub, of the datasets library's fingerprints)."""

    kind: str
    location: str
    md5: str | None


def _file_batches(path: Path, cfg: DataConfig, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The file's canonical rows, a batch at a time: memory stays bounded by the batch, not the file."""
    where, kinds = str(cfg.path), _KindCheck()
    for frame, start, locate in read_columns(path, wanted_columns(cfg), where, batch_rows):
        yield _pick_columns(frame, cfg, where, start, kinds, locate)


def local_dataset(cfg: DataConfig, project: Project) -> Path | None:
    """The folder `data.hf_name` names when it is a local copy (`save_to_disk` or Parquet files),
    relative to the project unless absolute; None for a hub id."""
    if not cfg.hf_name:
        return None
    local = Path(cfg.hf_name)
    local = local if local.is_absolute() else project.root / local
    return local if local.is_dir() else None


def _hf_batches(cfg: DataConfig, project: Project, batch_rows: int) -> tuple[Iterator[pd.DataFrame], Source]:
    import datasets

    local = local_dataset(cfg, project)
    try:
        if local is not None:
            ds: Any = datasets.load_from_disk(str(local))
            location = str(local)
        else:
            ds = datasets.load_dataset(cfg.hf_name, split=cfg.hf_split)
            location = f"hf://{cfg.hf_name}:{cfg.hf_split}"
    except Exception as exc:
        raise DataError(f"cannot load HF dataset '{cfg.hf_name}': {str(exc).splitlines()[0]}") from None
    if isinstance(ds, datasets.DatasetDict):
        if cfg.hf_split not in ds:
            raise DataError(f"HF dataset '{cfg.hf_name}' has no split '{cfg.hf_split}' (has: {', '.join(ds)})")
        ds = ds[cfg.hf_split]
    where = f"HF dataset '{cfg.hf_name}'"
    require_columns(list(ds.column_names), wanted_columns(cfg), where)
    feature = ds.features.get(cfg.label_column)

    def batches() -> Iterator[pd.DataFrame]:
        # Arrow-backed and memory-mapped: a slice at a time, never the whole dataset as pandas.
        view = ds.select_columns(list(dict.fromkeys(wanted_columns(cfg).values()))).with_format("pandas")
        kinds = _KindCheck()
        for start in range(0, len(view), batch_rows):
            df = view[start : start + batch_rows]
            if isinstance(feature, datasets.ClassLabel):
                df[cfg.label_column] = _class_names(df[cfg.label_column], feature.names, where, cfg.label_column, start)
            yield _pick_columns(df, cfg, where, start, kinds)

    return batches(), Source("hf", location, getattr(ds, "_fingerprint", None))


def _class_names(values: pd.Series, names: list[str], where: str, column: str, start: int) -> list[str]:
    """A ClassLabel column's integer codes as their class names. A code outside the classes (-1,
    which HF datasets use for an unlabelled row, or a missing value) is a one-line error naming
    its row: it has no name, and a row without a label cannot train or test anything."""
    codes = pd.to_numeric(values, errors="coerce")
    valid = codes.notna() & codes.between(0, len(names) - 1) & (codes == codes.round())
    if not valid.all():
        pos = int(np.flatnonzero(~valid.to_numpy())[0])
        value = values.iloc[pos]
        shown = "no value" if _missing(value) else repr(value.item() if hasattr(value, "item") else value)
        raise DataError(
            f"{where}: column '{column}' (data.label_column) holds {shown} at {row_name(start + pos)}, "
            "not a class of its "
            f"ClassLabel (0..{len(names) - 1}: {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}); "
            "-1 marks an unlabelled row: drop those rows first"
        )
    return [names[int(c)] for c in codes]


class _KindCheck:
    """Refuses a column that mixes strings, numbers and booleans (1 and "1" would silently become
    one class) or holds lists or objects, across every batch of a source: it remembers where each
    kind was first seen."""

    def __init__(self) -> None:
        self.first: dict[str, dict[str, tuple[str, Any]]] = {}

    def __call__(self, values: pd.Series, what: str, locate: Callable[[int], str]) -> None:
        first = self.first.setdefault(what, {})
        if values.dtype != object:  # a typed column (Parquet int64, CSV text) holds one kind
            present = np.flatnonzero(values.notna().to_numpy())
            if len(present):
                self._saw(first, _kind(values.iloc[present[0]]), int(present[0]), values, what, locate)
            return
        for pos, v in enumerate(values.tolist()):
            kind = _kind(v)
            if kind is not None and kind not in first:
                self._saw(first, kind, pos, values, what, locate)

    @staticmethod
    def _saw(
        first: dict[str, tuple[str, Any]],
        kind: str | None,
        pos: int,
        values: pd.Series,
        what: str,
        locate: Callable[[int], str],
    ) -> None:
        if kind is None or kind in first:
            return
        v = values.iloc[pos]
        if kind not in ("string", "number", "boolean"):
            raise DataError(f"{what} holds a {kind} at {locate(pos)} ({str(v)[:40]}); expected a scalar")
        first[kind] = (locate(pos), v)
        if len(first) > 1:
            (k1, (w1, v1)), (k2, (w2, v2)) = first.items()
            raise DataError(f"{what} mixes value types: {k1} at {w1} ({v1!r}), {k2} at {w2} ({v2!r})")


def _pick_columns(
    df: pd.DataFrame,
    cfg: DataConfig,
    where: str,
    start: int = 0,
    kinds: _KindCheck | None = None,
    locate: Callable[[int], str] | None = None,
) -> pd.DataFrame:
    """One batch of the source in the canonical columns; `start` is the batch's first row number
    in the source (the default ids are row numbers)."""
    require_columns(list(df.columns), wanted_columns(cfg), where)
    check = kinds or _KindCheck()
    at = locate or rows_from(start)
    check(df[cfg.label_column], f"{where}: column '{cfg.label_column}' (data.label_column)", at)
    if cfg.id_column:
        check(df[cfg.id_column], f"{where}: column '{cfg.id_column}' (data.id_column)", at)
    ids = df[cfg.id_column] if cfg.id_column else pd.Series(range(start, start + len(df)), index=df.index)
    return pd.DataFrame(
        {
            "id": ids.map(_as_str),
            "text": df[cfg.text_column].map(lambda v: None if _missing(v) else str(v)),
            "label": df[cfg.label_column].map(_as_str),
            "group": df[cfg.group_column].map(lambda v: None if _missing(v) else str(v)) if cfg.group_column else None,
            items.PAIR: None,
        }
    )


def _kind(v: Any) -> str | None:
    if _missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):  # before numbers: bool is an int subclass
        return "boolean"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "number"
    return "string" if isinstance(v, str) else type(v).__name__


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _as_str(v: Any) -> str | None:
    if _missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_task(cfg: DataConfig, project: Project) -> tuple[pd.DataFrame, Source]:
    """A named task: its hub splits (or `data.hf_name`: a local copy or another hub id), formatted."""
    assert cfg.name is not None
    spec = suite.task(cfg.name)
    local = local_dataset(cfg, project)
    if local is not None:
        raw = hub.read_local(cfg.name, local, spec.splits)
    else:
        raw = hub.read_hub(cfg.name, cfg.hf_name or spec.hub_id, spec.config, spec.splits)
    table = suite.format_splits(cfg.name, spec, raw.splits)
    return table, Source("task", f"{cfg.name} <- {raw.location}", raw.fingerprint)


STREAMED = ("file", "hf")  # source kinds read in batches; the others (tasks, bundled) are small and whole


def iter_source(
    cfg: DataConfig, project: Project, batch_rows: int = BATCH_ROWS
) -> tuple[Iterator[pd.DataFrame], Source]:
    """The configured source in the canonical columns, before dedupe and subsampling, as batches
    of at most `batch_rows` rows (one batch for tasks and the bundled corpora). Files and HF
    datasets are read lazily: a malformed row raises when its batch is reached."""
    if cfg.path:
        path = project.resolve_inside(cfg.path)
        if path.suffix.lower() in READERS and path.is_file():
            check_readable(path)  # before the md5 reads it
            source = Source("file", str(cfg.path), file_md5(path))
        else:
            source = Source("file", str(cfg.path), None)  # _file_batches names what is wrong
        return _file_batches(path, cfg, batch_rows), source
    if cfg.name in suite.TASKS:
        table, source = _read_task(cfg, project)
        return iter([table]), source
    if cfg.hf_name:
        return _hf_batches(cfg, project, batch_rows)
    assert cfg.name is not None  # guaranteed by DataConfig's validator
    table = bundled.load_corpus(cfg.name, project.data_dir).assign(**{items.PAIR: None})
    files = bundled.corpus(cfg.name).files
    return iter([table]), Source("bundled", cfg.name, ",".join(bundled.FILE_MD5[f] for f in files))


def read_source(cfg: DataConfig, project: Project) -> tuple[pd.DataFrame, Source]:
    """The whole source in the canonical columns, before dedupe and subsampling (in memory: the
    pipeline's ingest streams instead, see `w2s.core.data.ingest`)."""
    batches, source = iter_source(cfg, project)
    frames = list(batches)
    if not frames:
        return pd.DataFrame(columns=COLUMNS), source
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0], source


PROBE_ROWS = 1000


def probe_source(cfg: DataConfig, project: Project) -> None:
    """Read the start of a data file or a local HF dataset (one batch; a CSV block), so that a file
    that cannot be opened, is not UTF-8, cannot be parsed or lacks a configured column, or a label
    that is not a class, fails in one line before any work starts. Ingest reads the rest with the
    same readers. Hub datasets, tasks and bundled corpora are not probed (they are downloaded or
    checked by their own code), but a bundled corpus's files must be present: a sweep records its
    seeds in the ledger before its first point reads them."""
    if cfg.path:
        batches: Iterator[pd.DataFrame] = _file_batches(project.resolve_inside(cfg.path), cfg, PROBE_ROWS)
    elif cfg.name not in suite.TASKS and local_dataset(cfg, project) is not None:
        batches, _ = _hf_batches(cfg, project, PROBE_ROWS)
    else:
        if cfg.name in bundled.CORPORA and not cfg.hf_name:
            bundled.check_present(cfg.name, project.data_dir)
        return
    try:
        next(batches, None)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _stable_order(ids: pd.Series) -> pd.Series:
    return ids.map(lambda i: hashlib.md5(str(i).encode()).hexdigest())


def canonicalise(table: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop duplicate texts (when asked) and subsample deterministically; report the counts.

    Both act on whole items (`w2s.core.data.items`): an item any of whose texts already appeared
    (earlier in the table, or in the item itself) is dropped with all its rows, and the subsample
    keeps whole items, never more than `max_rows` rows. Unpaired rows are items of one row.
    """
    stats = {"rows_read": len(table)}
    if table.empty:
        raise DataError("the data source has no rows")
    if items.PAIR not in table.columns:
        table = table.assign(**{items.PAIR: None})
    if cfg.dedupe:
        norm = table["text"].map(lambda t: " ".join(t.split()) if isinstance(t, str) else t)
        dup = (norm.duplicated() & norm.notna()).to_numpy()
        codes = items.item_codes(table)
        # Dropping only the duplicate row would leave its partner unpaired: drop the whole item.
        drop = np.isin(codes, codes[dup])
        stats["duplicate_texts_dropped"] = int(dup.sum())
        if items.is_paired(table):
            stats["partner_rows_dropped"] = int(drop.sum() - dup.sum())
        table = table.loc[~drop]
    if cfg.max_rows is not None and len(table) > cfg.max_rows:
        # Hash order, not a seed: the subsample (and so data_md5) is the same for every seed.
        codes = items.item_codes(table)
        # An unpaired row is ordered by its id (as it always was), an item by its pair key.
        keys = table["id"].astype(str).where(table[items.PAIR].isna(), "pair:" + table[items.PAIR].astype(str))
        order = _stable_order(keys.groupby(codes, sort=True).first()).sort_values()
        sizes = np.bincount(codes)[order.index.to_numpy()]
        keep = order.index.to_numpy()[np.cumsum(sizes) <= cfg.max_rows]
        table = table.iloc[items.rows_of(codes, keep)]
    table = table.reset_index(drop=True)[COLUMNS]
    stats["rows"] = len(table)
    return table, stats


class TableDigest:
    """The md5 of a table's rows, fed a batch at a time: rows joined by a record separator, cells
    by a unit separator, a missing cell (None or NaN) as "". The joining runs in pyarrow, so hashing a large
    table costs one pass of string conversion, not a Python loop over rows."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self._md5 = hashlib.md5()

    def update(self, frame: pd.DataFrame) -> TableDigest:
        import pyarrow as pa
        import pyarrow.compute as pc

        for start in range(0, len(frame), BATCH_ROWS):
            part = frame.iloc[start : start + BATCH_ROWS]
            cells = [
                pa.array(["" if _missing(v) else str(v) for v in part[c].tolist()], type=pa.large_string())
                for c in self.columns
            ]
            rows = pc.binary_join_element_wise(*cells, pa.scalar("\x1f", pa.large_string()))
            end = pa.scalar("\x1e", pa.large_string())
            rows = pc.binary_join_element_wise(rows, pa.scalar("", pa.large_string()), end)
            offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + len(rows) + 1]
            if len(rows):
                self._md5.update(memoryview(rows.buffers()[2])[int(offsets[0]) : int(offsets[-1])])
        return self

    def hexdigest(self) -> str:
        return self._md5.hexdigest()


def table_md5(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """Content hash of a table's columns (by default the canonical columns it has), independent
    of file format and row index."""
    return TableDigest(columns or [c for c in COLUMNS if c in table.columns]).update(table).hexdigest()

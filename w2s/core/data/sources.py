"""Resolve the configured data source to the canonical table `id, text, label, group, pair`.

`group` names a distribution-shift group (held out with `split.ood_groups`); `pair` keys the rows
built from one source item (`w2s.core.data.items`). Either is null where it does not apply.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.core.config import DataConfig
from w2s.core.data import bundled, hub, items, tasks
from w2s.errors import DataError
from w2s.io import file_md5
from w2s.project import Project

COLUMNS = ["id", "text", "label", "group", items.PAIR]
READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class Source:
    """Where the table came from, for lineage: a kind (file, hf, task, bundled), a location and the
    md5 of its bytes (for data loaded from the hub, of the datasets library's fingerprints)."""

    kind: str
    location: str
    md5: str | None


def _row(i: int) -> str:
    return f"data row {i + 1}"


def _decode(path: Path) -> str:
    """The file as text: UTF-8, with or without a byte-order mark; other encodings name the line."""
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}: line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save the file as UTF-8"
        ) from None


def _read_jsonl(path: Path, text: str) -> tuple[pd.DataFrame, Callable[[int], str]]:
    # Parsed line by line (not pd.read_json) so that a bad line is reported by its number.
    records, lines = [], []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {n}: expected one JSON object per line, got {type(obj).__name__}")
        records.append(obj)
        lines.append(n)
    if not records:
        raise DataError(f"{path}: the file is empty")
    return pd.DataFrame.from_records(records), lambda i: f"line {lines[i]}"


def _read_file(path: Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """The file's table and how to name its i-th row in an error message."""
    fmt = READERS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use CSV, TSV, JSONL or Parquet)")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if fmt in ("csv", "tsv"):
            text = _decode(path)
            return pd.read_csv(
                io.StringIO(text), sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=True
            ), _row
        if fmt == "jsonl":
            return _read_jsonl(path, _decode(path))
        return pd.read_parquet(path), _row
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except Exception as exc:  # each reader raises its own parser error type
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse {fmt.upper()}: {msg}") from None


def local_dataset(cfg: DataConfig, project: Project) -> Path | None:
    """The folder `data.hf_name` names when it is a local copy (`save_to_disk` or Parquet files),
    relative to the project unless absolute; None for a hub id."""
    if not cfg.hf_name:
        return None
    local = Path(cfg.hf_name)
    local = local if local.is_absolute() else project.root / local
    return local if local.is_dir() else None


def _read_hf(cfg: DataConfig, project: Project) -> tuple[pd.DataFrame, Source]:
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
    df = ds.to_pandas()
    feature = ds.features.get(cfg.label_column)
    if isinstance(feature, datasets.ClassLabel):
        df[cfg.label_column] = [feature.int2str(int(v)) for v in df[cfg.label_column]]
    return df, Source("hf", location, getattr(ds, "_fingerprint", None))


def _pick_columns(df: pd.DataFrame, cfg: DataConfig, where: str, locate: Callable[[int], str] = _row) -> pd.DataFrame:
    wanted = {"text_column": cfg.text_column, "label_column": cfg.label_column}
    if cfg.id_column:
        wanted["id_column"] = cfg.id_column
    for key, col in wanted.items():
        if col not in df.columns:
            have = ", ".join(map(str, df.columns[:12]))
            raise DataError(f"{where}: no column '{col}' (data.{key}); columns are: {have}")
    _check_scalar_kind(df[cfg.label_column], f"{where}: column '{cfg.label_column}' (data.label_column)", locate)
    if cfg.id_column:
        _check_scalar_kind(df[cfg.id_column], f"{where}: column '{cfg.id_column}' (data.id_column)", locate)
    ids = df[cfg.id_column] if cfg.id_column else pd.Series(range(len(df)), index=df.index)
    return pd.DataFrame(
        {
            "id": ids.map(_as_str),
            "text": df[cfg.text_column].map(lambda v: None if _missing(v) else str(v)),
            "label": df[cfg.label_column].map(_as_str),
            "group": None,
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


def _check_scalar_kind(values: pd.Series, what: str, locate: Callable[[int], str]) -> None:
    """Refuse a column that mixes strings, numbers and booleans (1 and "1" would silently become
    one class) or holds lists or objects."""
    if values.dtype != object:
        return  # a typed column (Parquet int64, a CSV read as str) holds one kind by construction
    first: dict[str, int] = {}
    for pos, v in enumerate(values.tolist()):
        kind = _kind(v)
        if kind is None or kind in first:
            continue
        if kind not in ("string", "number", "boolean"):
            raise DataError(f"{what} holds a {kind} at {locate(pos)} ({str(v)[:40]}); expected a scalar")
        first[kind] = pos
        if len(first) > 1:
            (k1, p1), (k2, p2) = first.items()
            raise DataError(
                f"{what} mixes value types: {k1} at {locate(p1)} ({values.iloc[p1]!r}), "
                f"{k2} at {locate(p2)} ({values.iloc[p2]!r})"
            )


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
    spec = tasks.task(cfg.name)
    local = local_dataset(cfg, project)
    if local is not None:
        raw = hub.read_local(cfg.name, local, spec.splits)
    else:
        raw = hub.read_hub(cfg.name, cfg.hf_name or spec.hub_id, spec.config, spec.splits)
    table = tasks.format_splits(cfg.name, spec, raw.splits)
    return table, Source("task", f"{cfg.name} <- {raw.location}", raw.fingerprint)


def read_source(cfg: DataConfig, project: Project) -> tuple[pd.DataFrame, Source]:
    """Read the configured source into the canonical columns, before dedupe and subsampling."""
    if cfg.path:
        path = project.resolve_inside(cfg.path)
        df, locate = _read_file(path)
        table = _pick_columns(df, cfg, str(cfg.path), locate)
        return table, Source("file", str(cfg.path), file_md5(path))
    if cfg.name in tasks.TASKS:
        return _read_task(cfg, project)
    if cfg.hf_name:
        df, src = _read_hf(cfg, project)
        return _pick_columns(df, cfg, f"HF dataset '{cfg.hf_name}'"), src
    assert cfg.name is not None  # guaranteed by DataConfig's validator
    table = bundled.load_corpus(cfg.name, project.data_dir).assign(**{items.PAIR: None})
    files = bundled.corpus(cfg.name).files
    return table, Source("bundled", cfg.name, ",".join(bundled.FILE_MD5[f] for f in files))


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


def table_md5(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """Content hash of a table's columns (by default the canonical columns it has), independent
    of file format and row index."""
    h = hashlib.md5()
    for row in table[columns or [c for c in COLUMNS if c in table.columns]].itertuples(index=False):
        h.update(("\x1f".join("" if v is None else str(v) for v in row) + "\x1e").encode())
    return h.hexdigest()

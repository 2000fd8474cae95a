"""Read a user's data file (CSV, TSV, JSONL or Parquet) in bounded batches of the configured
columns, with one-line errors that name the file, the row or line and what is wrong; the
canonical table is built from these batches by `w2s.core.data.sources`.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from w2s.core.config import DataConfig
from w2s.errors import DataError

READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def row_name(i: int) -> str:
    return f"data row {i + 1}"


def rows_from(start: int) -> Callable[[int], str]:
    """How to name the i-th row of a batch that starts at row `start`."""
    return lambda i: row_name(start + i)


BATCH_ROWS = 100_000  # rows per batch a reader yields: bounds ingest memory, whatever the file's size
CSV_BLOCK_BYTES = 4 << 20  # pyarrow's CSV reader yields one batch per block of this many bytes (and reads a few ahead)

# pandas' default missing-value strings: a CSV cell reads as missing exactly when it did with
# pandas.read_csv, so streaming ingest gives the same table (and data md5) as before.
NA_STRINGS = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def _not_utf8(path: Path) -> DataError | None:
    """The error for a file that is not UTF-8, naming the first bad line (found in a streamed
    pass); None when the file is UTF-8."""
    with path.open("rb") as f:
        return _utf8_error(path, iter(lambda: f.read(1 << 20), b""))


def _utf8_error(path: Path, chunks: Iterable[bytes]) -> DataError | None:
    """The error for the first byte of `chunks` (the file from its start, a part or all of it,
    ending at a line's end) that is not UTF-8, naming its line; None when there is none."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    for chunk in chunks:
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            line += chunk.count(b"\n", 0, max(exc.start, 0))
            return DataError(
                f"{path}: line {line}: not UTF-8 text ({exc.reason} at byte {offset + max(exc.start, 0)}); "
                "re-save the file as UTF-8"
            )
        line += chunk.count(b"\n")
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return DataError(f"{path}: line {line}: not UTF-8 text ({exc.reason} at the end of the file)")
    return None


class _Refused:
    """pyarrow's invalid-row handler: keeps the rows pyarrow refused, to name the line of the first
    (pyarrow's reader knows only its text), and fails the read."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def __call__(self, row: Any) -> str:
        self.rows.append(row)
        return "error"


def _quiet_undecodable_rows() -> None:
    """pyarrow decodes a refused row's text as UTF-8 before it calls the handler. In a file that is
    not UTF-8 that decoding fails inside pyarrow, which prints it through `sys.unraisablehook`
    ("Exception ignored in: ... Traceback ... UnicodeDecodeError") and then fails the read, which
    `_csv_error` reports in one line naming the bad byte. Drop those reports, and only those, from
    every thread pyarrow parses in; any other unraisable exception goes to the previous hook."""
    previous = sys.unraisablehook
    if isinstance(previous, _QuietRowsHook):
        return
    sys.unraisablehook = _QuietRowsHook(previous)


class _QuietRowsHook:
    def __init__(self, previous: Callable[[Any], Any]) -> None:
        self.previous = previous

    def __call__(self, unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError) and isinstance(unraisable.object, _Refused):
            return
        self.previous(unraisable)


def _csv_batches(path: Path, sep: str, wanted: dict[str, str], where: str) -> Iterator[tuple[pd.DataFrame, int]]:
    """The wanted columns of a CSV/TSV as text, a block at a time (pyarrow's streaming reader)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _quiet_undecodable_rows()
    refused = _Refused()
    bad = refused.rows
    parse = pacsv.ParseOptions(delimiter=sep, newlines_in_values=True, invalid_row_handler=refused)
    header = _first_block_header(path, parse, sep, bad)
    if header is None:  # the first block ends inside a row: the streaming reader finds the header
        try:
            header = pacsv.open_csv(path, parse_options=parse).schema.names
        except (pa.ArrowInvalid, OSError) as exc:
            raise _csv_error(path, exc, sep, bad) from None
    require_columns(header, wanted, where)
    columns = list(dict.fromkeys(wanted.values()))
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},  # never inferred: an id column of numbers stays text
        include_columns=columns,
        strings_can_be_null=True,
        null_values=NA_STRINGS,
    )
    try:  # the reader parses its first block on opening
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            parse_options=parse,
            convert_options=convert,
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise _csv_error(path, exc, sep, bad) from None
    start = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise _csv_error(path, exc, sep, bad) from None
        yield batch.to_pandas(), start
        start += batch.num_rows


def _first_block_header(path: Path, parse: Any, sep: str, bad: list[Any]) -> list[str] | None:
    """The header of a CSV/TSV, after its first block parsed whole, in memory and in this thread,
    or None (the streaming reader then reads the header) when that block is cut from a larger file
    and fails in a way the cut may cause. A first block that does not parse raises the read's
    one-line DataError here instead of in pyarrow's streaming reader: with torch loaded, a
    streaming reader that fails on opening aborts the interpreter at exit ("terminate called
    without an active exception", exit 134) after the one-line error is printed, in one run in
    five to ten on a busy machine. A failure in a later block, with the reader open, does not
    (none in 48 runs), nor does this whole-buffer parse (none in 24)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with path.open("rb") as f:
            block = f.read(CSV_BLOCK_BYTES + 1)
    except OSError as exc:
        raise _csv_error(path, exc, sep, bad) from None
    truncated = len(block) > CSV_BLOCK_BYTES
    if truncated:  # parse complete lines only; a cut inside a quoted value fails
        end = block.rfind(b"\n", 0, CSV_BLOCK_BYTES)
        if end < 0:
            return None
        block = block[: end + 1]
    encoding = _utf8_error(path, [block])  # pyarrow would read such bytes as a binary column
    if encoding is not None:
        raise encoding
    try:
        # one block (types inferred over all of it, so no value fails a conversion), one thread
        options = pacsv.ReadOptions(use_threads=False, block_size=len(block) + 1)
        table = pacsv.read_csv(pa.BufferReader(block), read_options=options, parse_options=parse)
    except pa.ArrowInvalid as exc:
        if truncated:  # perhaps only the cut, inside a quoted value: the streaming reader decides
            bad.clear()  # (and a row it refuses is reported from its own read)
            return None
        raise _csv_error(path, exc, sep, bad) from None
    return table.column_names


def _csv_error(path: Path, exc: Exception, sep: str, bad: list[Any]) -> DataError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError):  # the file became unreadable, or the disk failed, mid-read
        return DataError(f"{path}: cannot read the file: {msg}")
    encoding = _not_utf8(path)  # pyarrow reports some encodings as an empty file or a parse error
    if encoding is not None:
        return encoding
    if "Empty CSV file" in msg:
        return DataError(f"{path}: the file is empty")
    if bad:
        row = bad[0]
        where = _line_of(path, row.text)
        return DataError(
            f"{path}: {where}cannot parse {'CSV' if sep == ',' else 'TSV'}: expected {row.expected_columns} fields, "
            f"saw {row.actual_columns} ({row.text[:60]})"
        )
    return DataError(f"{path}: cannot parse {'CSV' if sep == ',' else 'TSV'}: {msg}")


def _line_of(path: Path, text: str) -> str:
    """ "line N: " for the first line of the file that starts the row `text`, in a streamed scan;
    "" when no line matches."""
    first = text.split("\n")[0].rstrip("\r").encode()
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n") == first:
                return f"line {n}: "
    return ""


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[tuple[pd.DataFrame, Callable[[int], str]]]:
    """One JSON object per line, `batch_rows` lines at a time. Parsed line by line (not
    pd.read_json) so that a bad line is reported by its number."""
    records: list[Any] = []
    lines: list[int] = []
    offset = total = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, offset = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}: line {n}: not UTF-8 text ({exc.reason} at byte {offset + exc.start}); "
                    "re-save the file as UTF-8"
                ) from None
            offset += len(raw)
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
            total += 1
            if len(records) == batch_rows:
                yield _records(records, lines)
                records, lines = [], []
    if records:
        yield _records(records, lines)
    elif total == 0:
        raise DataError(f"{path}: the file is empty")


def _records(records: list[Any], lines: list[int]) -> tuple[pd.DataFrame, Callable[[int], str]]:
    numbers = list(lines)
    return pd.DataFrame.from_records(records), lambda i: f"line {numbers[i]}"


def require_columns(columns: list[str], wanted: dict[str, str], where: str) -> None:
    for key, col in wanted.items():
        if col not in columns:
            have = ", ".join(map(str, columns[:12]))
            raise DataError(f"{where}: no column '{col}' ({key}); columns are: {have}")


def wanted_columns(cfg: DataConfig) -> dict[str, str]:
    """The columns a config reads, by the config key that names each."""
    cols = {"data.text_column": cfg.text_column, "data.label_column": cfg.label_column}
    cols |= {"data.id_column": cfg.id_column} if cfg.id_column else {}
    return cols | ({"data.group_column": cfg.group_column} if cfg.group_column else {})


def read_columns(
    path: Path, wanted: dict[str, str], where: str, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[pd.DataFrame, int, Callable[[int], str]]]:
    """The `wanted` columns of a CSV, TSV, JSONL or Parquet file, a batch at a time, each with its
    first row number and how to name its i-th row in an error. `wanted` maps what the user calls
    each column (a config key or an option) to its name, for the error when one is missing."""
    fmt = READERS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use CSV, TSV, JSONL or Parquet)")
    check_readable(path)
    columns = list(dict.fromkeys(wanted.values()))
    start = 0
    if fmt in ("csv", "tsv"):
        for frame, start in _csv_batches(path, "," if fmt == "csv" else "\t", wanted, where):
            yield frame, start, rows_from(start)
    elif fmt == "jsonl":
        for frame, locate in _jsonl_batches(path, batch_rows):
            require_columns(list(frame.columns), wanted, where)
            yield frame, start, locate
            start += len(frame)
    else:
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # pyarrow's error for a file that is not Parquet
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: cannot parse PARQUET: {msg}") from None
        require_columns(names, wanted, where)
        batches = parquet_batches(path, columns, batch_rows)
        while True:
            try:  # the schema above is the footer only: a damaged data page fails here
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # pyarrow's error for a damaged page (OSError, ArrowInvalid, ...)
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DataError(f"{path}: cannot read PARQUET data (from {row_name(start)} on): {msg}") from None
            yield batch.to_pandas(), start, rows_from(start)
            start += batch.num_rows


def check_readable(path: Path) -> None:
    """A one-line DataError unless `path` is a regular file this process can open and read."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def parquet_batches(path: str | Path, columns: list[str] | None, batch_rows: int) -> Iterator[Any]:
    """A Parquet file's Arrow record batches, read one at a time."""
    import pyarrow.parquet as pq

    # pre_buffer (pyarrow's default) caches what it has read ahead for the file's life: reading a
    # 1 GB table batch by batch then holds most of it in memory.
    yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_rows, columns=columns)

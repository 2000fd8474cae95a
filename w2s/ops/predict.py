"""Batch inference: a registered model version over a file of texts, in chunks, to a file of
probabilities and labels keyed by the input's ids.

The input is read a batch at a time (the same readers as ingest), so memory stays bounded by one
batch whatever the file's size; the output is written batch by batch to a temporary file that
replaces the target only when every row is done. A sidecar `<output>.json` records the model
version, its run, the input's md5 and the row count.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.core.data.file_readers import BATCH_ROWS, READERS, read_columns
from w2s.errors import DataError
from w2s.io import atomic_path, file_md5, write_json

OUTPUTS = (".parquet", ".csv", ".jsonl")


@dataclass(frozen=True)
class Prediction:
    """What a batch prediction read, used and wrote."""

    model: str
    version: str
    run_id: str
    input: str
    input_md5: str
    output: str
    rows: int
    labels: list[str]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_paths(input_path: Path, output_path: Path) -> None:
    """Refuse an unreadable input or an output format we cannot write, before any model is loaded."""
    if input_path.suffix.lower() not in READERS:
        raise DataError(f"{input_path}: unsupported input type '{input_path.suffix}' (use CSV, TSV, JSONL or Parquet)")
    if not input_path.is_file():
        raise DataError(f"input file not found: {input_path}")
    if output_path.suffix.lower() not in OUTPUTS:
        raise DataError(f"{output_path}: unsupported output type '{output_path.suffix}' (use .parquet, .csv or .jsonl)")
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"{output_path}: the output would overwrite the input")


def predict_file(
    ref: str,
    input_path: Path,
    output_path: Path,
    text_column: str = "text",
    id_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> Prediction:
    """Predict every row of `input_path` with the registered version `ref` (`name@alias` or
    `name/version`) and write `id, label, p_<label>...` to `output_path`. Without `id_column`
    the input's `id` column is used when it has one, else the row number."""
    from w2s.ops import model_registry

    check_paths(input_path, output_path)
    if not id_column and _has_column(input_path, "id"):
        id_column = "id"
    wanted = {"--text-column": text_column} | ({"--id-column": id_column} if id_column else {})
    batches = read_columns(input_path, wanted, str(input_path), batch_rows)
    first = next(batches, None)  # a missing column or an unparsable file fails before the model loads
    version = model_registry.resolve_version(ref)
    start, rows = time.perf_counter(), 0
    with tempfile.TemporaryDirectory(prefix="w2s-predict-") as tmp:
        model = _Model(model_registry.download_model(version.name, str(version.version), Path(tmp)))
        with atomic_path(output_path) as out, _Writer(out, output_path.suffix.lower()) as writer:
            for frame, first_row, locate in itertools.chain([first] if first else [], batches):
                texts = frame[text_column]
                missing = np.flatnonzero(texts.isna().to_numpy())
                if len(missing):
                    raise DataError(f"{input_path}: column '{text_column}' is empty at {locate(int(missing[0]))}")
                ids = frame[id_column].astype(str) if id_column else pd.RangeIndex(first_row, first_row + len(frame))
                writer.write(model.predict(np.asarray(ids), [str(t) for t in texts]))
                rows += len(frame)
                if progress is not None:
                    progress(len(frame))
            if rows == 0:
                raise DataError(f"{input_path}: the file has no rows")
    result = Prediction(
        model=version.name,
        version=str(version.version),
        run_id=version.run_id,
        input=str(input_path),
        input_md5=file_md5(input_path),
        output=str(output_path),
        rows=rows,
        labels=model.names,
        seconds=round(time.perf_counter() - start, 2),
    )
    write_json(sidecar(output_path), result.as_dict())
    return result


def sidecar(output_path: Path) -> Path:
    """Where the record of a prediction file lives: beside it, `<name>.json`."""
    return output_path.with_name(output_path.name + ".json")


def _has_column(path: Path, column: str) -> bool:
    try:
        next(read_columns(path, {"": column}, str(path), batch_rows=1), None)
    except DataError:
        return False
    return True


class _Model:
    """A downloaded model folder, loaded once: texts in, `id, label, p_<label>...` out."""

    def __init__(self, folder: Path) -> None:
        from w2s.core.models.classifier import load_classifier

        self.model, self.tokenizer, self.meta = load_classifier(folder)
        self.names: list[str] = list(self.meta["label_names"])

    def predict(self, ids: np.ndarray, texts: list[str]) -> pd.DataFrame:
        from w2s.core.models.batching import predict_texts

        probs = predict_texts(
            self.model, self.tokenizer, texts, self.meta["max_length"], link=self.meta.get("link", "softmax")
        )
        out = pd.DataFrame({"id": ids, "label": np.asarray(self.names, dtype=object)[probs.argmax(axis=1)]})
        for j, name in enumerate(self.names):
            out[f"p_{name}"] = probs[:, j]
        return out


class _Writer:
    """Appends frames to a Parquet, CSV or JSONL file."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path, self.suffix = path, suffix
        self._parquet: Any = None
        self._rows = 0

    def __enter__(self) -> _Writer:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table)
        elif self.suffix == ".csv":
            frame.to_csv(self.path, mode="a", header=self._rows == 0, index=False)
        else:
            with self.path.open("a", encoding="utf-8") as f:
                for record in frame.to_dict("records"):
                    f.write(json.dumps(record) + "\n")
        self._rows += len(frame)

    def __exit__(self, *exc: object) -> None:
        if self._parquet is not None:
            self._parquet.close()

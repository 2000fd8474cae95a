"""Read the hub splits a task pools: from the Hugging Face hub, or from a local copy.

A local copy is a folder written by `datasets.save_to_disk` (a DatasetDict, whose splits are
picked by name, or a single Dataset, used whole), or a folder of data files in the hub's own
layout: `<split>-*.parquet` / `<split>.parquet` / `<split>.jsonl[.gz]`, or any such file inside a
folder named after the split (`default/train/0000.parquet`), searched recursively.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from w2s.errors import DataError
from w2s.io import file_md5

DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class RawSplits:
    """The hub splits as read, where they came from, and a fingerprint of the input."""

    splits: dict[str, pd.DataFrame]
    location: str
    fingerprint: str


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_hub(task: str, hub_id: str, config: str | None, splits: tuple[str, ...]) -> RawSplits:
    """Each split of `hub_id` through `datasets.load_dataset` (the local cache, else a download)."""
    import datasets

    frames, prints = {}, []
    for split in splits:
        try:
            ds = datasets.load_dataset(hub_id, config, split=split)
        except Exception as exc:  # network, auth, missing split: each library raises its own type
            raise DataError(f"{task}: cannot load split '{split}' of '{hub_id}': {_first_line(exc)}") from None
        frames[split] = ds.to_pandas()
        prints.append(str(getattr(ds, "_fingerprint", "")))
    where = f"hf://{hub_id}" + (f"/{config}" if config else "")
    digest = hashlib.md5("+".join(prints).encode()).hexdigest()
    return RawSplits(frames, f"{where} [{', '.join(splits)}]", digest)


def read_local(task: str, folder: Path, splits: tuple[str, ...]) -> RawSplits:
    """The task's splits from a local folder (see the module docstring for the layouts)."""
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        frames = _read_saved(task, folder, splits)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
    else:
        frames, files = _read_files(task, folder, splits)
    return RawSplits(frames, f"{folder} [{', '.join(frames)}]", _files_md5(folder, files))


def _read_saved(task: str, folder: Path, splits: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as exc:  # a damaged or foreign folder
        raise DataError(f"{task}: cannot read the save_to_disk folder {folder}: {_first_line(exc)}") from None
    if isinstance(ds, datasets.DatasetDict):
        missing = [s for s in splits if s not in ds]
        if missing:
            have, reads = ", ".join(ds), ", ".join(splits)
            raise DataError(f"{task}: {folder} has no split '{missing[0]}' (has: {have}; the task reads {reads})")
        return {s: ds[s].to_pandas() for s in splits}
    # A single Dataset carries no split to select by: it is the pool.
    return {str(ds.split) if ds.split else "all": ds.to_pandas()}


def _split_of(path: Path, split: str) -> bool:
    stem = path.name.split(".")[0]
    return stem == split or stem.startswith(split + "-") or path.parent.name == split


def _read_files(task: str, folder: Path, splits: tuple[str, ...]) -> tuple[dict[str, pd.DataFrame], list[Path]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))
    if not files:
        raise DataError(
            f"{task}: {folder} holds neither a save_to_disk dataset nor Parquet / JSON-lines files "
            "(expected e.g. train-00000-of-00001.parquet)"
        )
    chosen = {s: [f for f in files if _split_of(f, s)] for s in splits}
    missing = [s for s, found in chosen.items() if not found]
    if missing:
        names = ", ".join(sorted({f.relative_to(folder).as_posix() for f in files})[:8])
        raise DataError(
            f"{task}: {folder} has no file for split '{missing[0]}' (expected {missing[0]}-*.parquet or "
            f"{missing[0]}.jsonl; found {names})"
        )
    frames = {s: pd.concat([_read_file(task, f) for f in found], ignore_index=True) for s, found in chosen.items()}
    return frames, [f for found in chosen.values() for f in found]


def _read_file(task: str, path: Path) -> pd.DataFrame:
    try:
        if path.name.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True, dtype=False)
    except Exception as exc:  # each reader raises its own parser error type
        raise DataError(f"{task}: cannot read {path}: {_first_line(exc)}") from None


def _files_md5(folder: Path, files: list[Path]) -> str:
    """One md5 over the files read, their paths relative to the folder included."""
    h = hashlib.md5()
    for f in files:
        h.update(f"{f.relative_to(folder).as_posix()}\t{file_md5(f)}\n".encode())
    return h.hexdigest()

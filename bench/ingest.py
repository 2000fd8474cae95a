"""Ingest at scale: peak RSS and rows/s of ingest + raw-data gate + splits on generated CSVs of
growing size, each in a fresh process. The baseline, in the same run, is the whole-table path
(read the file into one frame, deduplicate, gate and split it in memory) on the sizes it can hold.

    python -m bench.ingest CSV MODE      # one measured run: MODE is `streamed` or `in-memory`
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, bench_env, run_process

WORDS = 4096  # vocabulary of the generated texts


def generate_csv(path: Path, megabytes: int, seed: int = 0) -> int:
    """A CSV of about `megabytes` MB: id, a text of 20-60 random words, a binary label; the rows."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:x}" for i in range(WORDS)])
    target, written, rows = megabytes * 10**6, 0, 0
    with path.open("w", encoding="utf-8") as f:
        f.write("id,text,label\n")
        while written < target:
            n = 20_000
            lengths = rng.integers(20, 61, n)
            words = vocab[rng.integers(0, WORDS, int(lengths.sum()))]
            texts = np.split(words, np.cumsum(lengths)[:-1])
            labels = rng.choice(["pos", "neg"], n)
            block = "".join(
                f"r{rows + i},{' '.join(t)},{lab}\n" for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
            )
            f.write(block)
            written += len(block)
            rows += n
    return rows


def measure_one(csv: Path, mode: str) -> dict[str, Any]:
    """Ingest + gate + split of `csv` in this process; wall seconds and rows."""
    import tempfile

    from w2s.config import load_config
    from w2s.project import Project

    cfg = load_config(None, ["data.path=" + csv.name, "data.labels=[neg,pos]"])
    project = Project(csv.parent)
    start = time.perf_counter()
    if mode == "streamed":
        from w2s.pipeline import data_steps

        with tempfile.TemporaryDirectory(dir=csv.parent) as out:
            table = data_steps.ingest(cfg, project, Path(out))
            data_steps.validate_table(table, cfg)
            splits, _ = data_steps.make_splits(table, cfg, Path(out))
            rows = table.rows
    else:
        from w2s.core.data.sources import canonicalise, read_source
        from w2s.core.data.split import assign_splits
        from w2s.ops.validation import validate_raw, validate_splits

        frame, _ = canonicalise(read_source(cfg.data, project)[0], cfg.data)
        validate_raw(frame, cfg.data.labels).raise_if_failed()
        validate_splits(assign_splits(frame, cfg.split, cfg.seed), ["neg", "pos"]).raise_if_failed()
        rows = len(frame)
    return {"seconds": time.perf_counter() - start, "rows": rows}


def measure(scratch: Path, quick: bool) -> dict[str, Any]:
    """Every size streamed, and the in-memory baseline on all but the largest."""
    sizes = [2, 5, 20] if quick else [10, 100, 1000]
    folder = scratch / "ingest"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"sizes_mb": sizes, "streamed": {}, "in-memory": {}}
    for mb in sizes:
        csv = folder / f"gen-{mb}mb.csv"
        if not csv.exists():
            generate_csv(csv, mb)
        for mode in ("streamed", "in-memory"):
            if mode == "in-memory" and mb == sizes[-1]:
                continue  # the baseline holds the whole table: the largest size is what streaming is for
            run = run_process([sys.executable, "-m", "bench.ingest", str(csv), mode], REPO, bench_env())
            inner = json.loads(run.output.strip().splitlines()[-1])
            out[mode][f"{mb}MB"] = {
                "file_mb": round(csv.stat().st_size / 1e6, 1),
                "rows": inner["rows"],
                "peak_rss_mb": round(run.peak_rss_mb, 1),
                "process_seconds": round(run.seconds, 1),
                "ingest_seconds": round(inner["seconds"], 1),
                "rows_per_s": round(inner["rows"] / inner["seconds"]),
            }
        csv.unlink()  # a GB of scratch is not worth keeping between runs
    return out


def main(csv: str, mode: str) -> None:
    print(json.dumps(measure_one(Path(csv), mode)))


if __name__ == "__main__":
    main(*sys.argv[1:3])

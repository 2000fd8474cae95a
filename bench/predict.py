"""Batch inference at scale: peak RSS and rows/s of `w2s predict` (a registered model over a
generated CSV read in blocks) on files of growing size, each in a fresh process. The baseline, in
the same run, is the whole-file path: read the CSV into one frame and call the pyfunc on every
text at once, as `mlflow.pyfunc.load_model(...).predict(frame)` invites.

    python -m bench.predict PROJECT CSV     # the whole-file baseline, in this process
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BIN, REPO, run_process
from bench.ingest import generate_csv
from bench.pipeline import Workspace, default_params, with_split

MODEL = "w2s-strong@challenger"


def registered_project(scratch: Path) -> tuple[Workspace, Path]:
    """A fresh project with a registered student: the demo's pipeline at 32 tokens on 500 transfer
    tweets (what is measured is the reading and writing around the model, not the model)."""
    params = with_split(default_params(), transfer=500, val=200)
    params["strong"] = {**params["strong"], "max_length": 32, "epochs": 1}
    work = Workspace(scratch / "predict")
    project = work.project(params)
    work.flow(project)
    return work, project


def whole_file(project: Path, csv: Path) -> dict[str, Any]:
    """The baseline: the whole CSV in one frame, one pyfunc call on every text; seconds and rows."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(f"sqlite:///{project / '.w2s' / 'mlflow.db'}")
    start = time.perf_counter()
    frame = pd.read_csv(csv)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}")
    probs = model.predict(frame["text"].tolist())
    frame.join(probs).to_parquet(csv.with_suffix(".whole.parquet"))
    return {"seconds": time.perf_counter() - start, "rows": len(frame)}


def measure(scratch: Path, quick: bool) -> dict[str, Any]:
    """`w2s predict` on every size; the whole-file baseline on the same files."""
    sizes = [4, 8]  # generated in 20,000-row blocks: 4.2 MB (20,000 rows) and 8.3 MB (40,000 rows)
    work, project = registered_project(scratch)
    env = work.env(project)
    out: dict[str, Any] = {"sizes_mb": sizes, "streamed": {}, "whole-file": {}}
    for mb in sizes:
        csv = project / f"gen-{mb}mb.csv"
        rows = generate_csv(csv, mb)
        run = run_process(
            [str(BIN / "w2s"), "predict", MODEL, "--input", csv.name, "--output", f"{csv.stem}.parquet"],
            project,
            env,
        )
        out["streamed"][f"{mb}MB"] = _figures(csv, rows, run.peak_rss_mb, run.seconds)
        base = run_process([sys.executable, "-m", "bench.predict", str(project), str(csv)], REPO, env)
        inner = json.loads(base.output.strip().splitlines()[-1])
        out["whole-file"][f"{mb}MB"] = _figures(csv, inner["rows"], base.peak_rss_mb, inner["seconds"])
        csv.unlink()
    return out


def _figures(csv: Path, rows: int, peak_mb: float, seconds: float) -> dict[str, Any]:
    return {
        "file_mb": round(csv.stat().st_size / 1e6, 1),
        "rows": rows,
        "peak_rss_mb": round(peak_mb, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
    }


def ratios(pred: dict[str, Any]) -> list[tuple[str, float, str]]:
    """Peak RSS growth with the file (bounded: well under the file ratio), and against the baseline."""
    streamed, whole = pred["streamed"], pred["whole-file"]
    small, big = (f"{mb}MB" for mb in pred["sizes_mb"])
    file_ratio = streamed[big]["file_mb"] / streamed[small]["file_mb"]
    return [
        (
            f"predict: peak RSS {big} / {small} (file ratio {file_ratio:.0f})",
            streamed[big]["peak_rss_mb"] / streamed[small]["peak_rss_mb"],
            "< 1.5",
        ),
        (
            f"predict: w2s predict / whole-file peak RSS ({big})",
            streamed[big]["peak_rss_mb"] / whole[big]["peak_rss_mb"],
            "< 1",
        ),
        (
            f"predict: w2s predict / whole-file rows/s ({big})",
            streamed[big]["rows_per_s"] / whole[big]["rows_per_s"],
            "(info)",
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(whole_file(Path(sys.argv[1]), Path(sys.argv[2]))))

"""The files DVC reads at the project root: `metrics.json` (the headline metrics of the last run,
for `dvc metrics show / diff` and `dvc exp show`) and `plots/` (the training curves of the last
run and the PGR chart of the last sweep, for `dvc plots show / diff`; dvc.yaml declares them).

The one writer of these files, whichever runner made the numbers (`w2s run`, the DVC `evaluate`
stage, `w2s sweep`): the same metrics give the same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from w2s.io import atomic_path, write_json

METRICS_FILE = "metrics.json"
PLOTS_DIR = "plots"
# Curve columns, in this order; a model that has no weak labels on val (ceiling, budget) leaves
# val_weak_acc empty.
CURVE_COLUMNS = ("step", "epoch", "train_loss", "val_gt_acc", "val_weak_acc")
SWEEP_FILE = "sweep_pgr.csv"
CURVE_KINDS = ("w2s", "ceiling", "budget")  # the strong models whose curves a run writes


def curve_file(kind: str) -> str:
    """The plots file of one strong model's training curve (`w2s`, `ceiling`, `budget`)."""
    return f"train_{kind}.csv"


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def curves(**models: Any) -> dict[str, list[dict[str, Any]]]:
    """kind -> the evaluation curve of that strong model's training (`ModelRef`s by kind)."""
    return {kind: list(ref.info.get("curve") or []) for kind, ref in models.items()}


def write_run_views(root: Path, metrics: dict[str, Any], curves: dict[str, list[dict[str, Any]]]) -> None:
    """`metrics.json` and one curve CSV per strong model (`curves`: kind -> evaluation points)."""
    for kind, points in curves.items():
        rows = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in p.items()} for p in points]
        _write_csv(root / PLOTS_DIR / curve_file(kind), list(CURVE_COLUMNS), rows)
    write_json(root / METRICS_FILE, metrics)


def write_sweep_view(root: Path, table: list[dict[str, Any]], label_keys: list[str]) -> None:
    """The sweep's PGR per configuration with its 95% CI (empty where PGR is not reported)."""
    rows = [
        {
            "config": " / ".join(str(r[k]) for k in label_keys) or "all",
            "pgr": r.get("pgr"),
            "pgr_lo": r.get("pgr_lo"),
            "pgr_hi": r.get("pgr_hi"),
            "pgr_status": r.get("pgr_status") or "",
        }
        for r in table
    ]
    _write_csv(root / PLOTS_DIR / SWEEP_FILE, ["config", "pgr", "pgr_lo", "pgr_hi", "pgr_status"], rows)

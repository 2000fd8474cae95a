"""The files DVC reads at the project root, read back by the real `dvc plots show` and
`dvc metrics show` through the project's own dvc.yaml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from w2s.analysis.dvc_views import write_run_views, write_sweep_view

REPO = Path(__file__).resolve().parents[2]
CURVE = [
    {"step": 5, "epoch": 0.5, "train_loss": 0.61, "val_gt_acc": 0.70, "val_weak_acc": 0.80},
    {"step": 10, "epoch": 1.0, "train_loss": 0.42, "val_gt_acc": 0.75, "val_weak_acc": 0.85},
]


def _dvc(root: Path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args, "--json"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_dvc_draws_the_training_curves_and_the_sweep_pgr_and_shows_the_headline_metrics(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    ceiling = [{k: v for k, v in p.items() if k != "val_weak_acc"} for p in CURVE]
    metrics = {"w2s_acc": 0.812, "pgr": 0.4, "weak_acc": 0.75, "ceiling_acc": 0.9}
    write_run_views(root, metrics, {"w2s": CURVE, "ceiling": ceiling, "budget": ceiling})
    table = [
        {"variant": "naive", "pgr": 0.41, "pgr_lo": 0.3, "pgr_hi": 0.52},
        {"variant": "tiny", "pgr": None, "pgr_status": "gap too small"},
    ]
    write_sweep_view(root, table, ["variant"])

    shown = _dvc(root, "metrics", "show")
    assert shown[""]["data"]["metrics.json"]["data"] == metrics  # "": the workspace

    plots = _dvc(root, "plots", "show")["data"]
    assert set(plots) == {"Validation accuracy during training", "Training loss", "PGR of the last sweep"}
    acc = plots["Validation accuracy during training"][0]["content"]["data"]["values"]
    drawn = {(v["filename::field"], v["step"], v["dvc_inferred_y_value"]) for v in acc}
    assert ("train_w2s.csv::val_weak_acc", "10", "0.85") in drawn
    assert ("train_ceiling.csv::val_gt_acc", "5", "0.7") in drawn
    bars = plots["PGR of the last sweep"][0]["content"]["data"]["values"]
    assert [(b["config"], b["pgr"], b["pgr_status"]) for b in bars] == [
        ("naive", "0.41", ""),
        ("tiny", "", "gap too small"),
    ]

    # one writer: the same numbers give the same bytes, whoever calls it
    before = {p.name: p.read_bytes() for p in (root / "plots").iterdir()} | {"m": (root / "metrics.json").read_bytes()}
    write_run_views(root, dict(reversed(metrics.items())), {"w2s": CURVE, "ceiling": ceiling, "budget": ceiling})
    after = {p.name: p.read_bytes() for p in (root / "plots").iterdir()} | {"m": (root / "metrics.json").read_bytes()}
    assert after == before

"""`dvc repro` runs the same stages as the Prefect flow and shares its model cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_dvc_repro_runs_every_stage_on_a_fresh_project(project: Path) -> None:
    import yaml

    from w2s.config import load_config

    # DVC needs every params section its stages name: write the tiny config out in full
    full = load_config(project / "params.yaml").model_dump(mode="json")
    (project / "params.yaml").write_text(yaml.safe_dump(full))
    shutil.copyfile(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(REPO / "w2s", project / "w2s", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dvc = [sys.executable, "-m", "dvc"]
    proc = subprocess.run([*dvc, "repro"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    metrics = json.loads((project / "metrics.json").read_text())
    assert {"weak_acc", "ceiling_acc", "w2s_acc", "pgr", "agreement"} <= set(metrics)
    labels = pd.read_parquet(project / "outputs" / "weak_labels.parquet")
    assert list(labels.columns) == ["id", "text", "weak_probs", "weak_label", "split"]
    assert (project / "dvc.lock").is_file()

    status = subprocess.run([*dvc, "status"], cwd=project, env=env, capture_output=True, text=True)
    assert "up to date" in status.stdout, status.stdout

    # the Prefect flow on the same params reuses the models the DVC stages trained
    from flows.pipeline import pipeline

    cfg = load_config(project / "params.yaml", ["registry.enabled=false"])
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project))
    assert result["reused"] == {"weak": True, "w2s": True, "ceiling": True}
    assert result["metrics"] == metrics

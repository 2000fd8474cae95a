"""Sweeps through the real flow: aggregation and shared work, and points on a local Dask cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_sweep_flow_runs_aggregates_and_reuses_shared_work(warm_project, capsys):
    from mlflow import MlflowClient

    from w2s.cli.main import main

    project = warm_project
    shutil.copyfile(REPO / "configs" / "sweep-tiny.yaml", project / "sweep.yaml")
    assert main(["sweep", "--config", "sweep.yaml"]) == 0
    out = capsys.readouterr().out
    assert "| strong.loss | seeds | weak acc |" in out

    sweep_dir = next((project / ".w2s" / "sweeps").iterdir())
    rows = json.loads((sweep_dir / "points.json").read_text())
    assert len(rows) == 4
    # the second method of each seed reuses that seed's weak model and ceiling
    for row in rows:
        if row["strong.loss"] == "logconf":
            assert row["reused"]["weak"] and row["reused"]["ceiling"] and not row["reused"]["w2s"]
    table = json.loads((sweep_dir / "results.json").read_text())
    assert [r["strong.loss"] for r in table] == ["xent", "logconf"]
    assert all(r["seeds"] == [0, 1] for r in table)
    assert (sweep_dir / "pgr.png").stat().st_size > 1000
    assert (sweep_dir / "results.csv").read_text().startswith("strong.loss,seeds,")

    # logconf against xent, paired by seed: the mean of the per-seed differences, on both seeds
    by = {(r["strong.loss"], r["seed"]): r["w2s_acc"] for r in rows}
    logconf = table[1]
    assert logconf["diff_w2s_acc_n"] == 2 and not logconf["diff_w2s_acc_claim"], "2 seeds support no claim"
    expected = sum(by[("logconf", s)] - by[("xent", s)] for s in (0, 1)) / 2
    assert logconf["diff_w2s_acc_mean"] == pytest.approx(expected)
    assert "Paired differences to strong.loss=xent:" in (sweep_dir / "results.md").read_text()
    # each point kept its per-row test correctness, which the PGR bootstrap resamples
    correct = pd.read_parquet(sweep_dir / f"point-{rows[0]['point']:03d}" / "test_correct.parquet")
    assert list(correct.columns) == ["id", "weak", "w2s", "ceiling"] and len(correct) == 120
    assert correct["w2s"].mean() == pytest.approx(rows[0]["w2s_acc"])
    for r in table:
        assert r["pgr"] is None or r["pgr_lo"] is None or r["pgr_lo"] <= r["pgr_hi"]

    client = MlflowClient()
    parents = client.search_runs(client.get_experiment_by_name("w2s").experiment_id, "tags.method = 'sweep'")
    assert len(parents) == 1
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"results.csv", "results.md", "pgr.png", "points.json"} <= artifacts
    children = client.search_runs(
        [parents[0].info.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"
    )
    assert len(children) == 4


def test_sweep_points_run_on_a_local_dask_cluster(warm_project, capsys):
    from w2s.cli.main import main

    project = warm_project
    # one point, the logconf student, which the session's cache does not hold
    spec = (REPO / "configs" / "sweep-tiny.yaml").read_text().replace("seed: [0, 1]", "seed: [0]")
    spec = spec.replace("strong.loss: [xent, logconf]", "strong.loss: [logconf]").replace(
        "baseline: {strong.loss: xent}", ""
    )
    (project / "sweep.yaml").write_text(spec + "runner: dask\nmax_workers: 1\n")
    assert main(["sweep", "--config", "sweep.yaml"]) == 0
    assert "| strong.loss | seeds | weak acc |" in capsys.readouterr().out
    sweep_dir = next((project / ".w2s" / "sweeps").iterdir())
    rows = json.loads((sweep_dir / "points.json").read_text())
    assert [r["strong.loss"] for r in rows] == ["logconf"]
    # the Dask worker is another process: it read the weak model and the ceiling from the
    # project's cache, and trained the new student there
    assert rows[0]["reused"]["weak"] and rows[0]["reused"]["ceiling"] and not rows[0]["reused"]["w2s"]

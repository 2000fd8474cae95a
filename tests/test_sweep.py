"""`w2s sweep`: grid expansion, seed aggregation and the real Prefect flow on a tiny grid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from w2s.errors import ConfigError
from w2s.pipeline.sweep_grid import SweepConfig, expand, load_sweep

REPO = Path(__file__).resolve().parents[1]


def test_grid_expands_to_validated_configs_with_conditional_overrides(tmp_path):
    spec = SweepConfig(base=None, overrides={"strong.epochs": 1},
                       grid={"data.name": ["election-tweets", "reuters-r8"], "strong.loss": ["xent", "product"],
                             "seed": [0, 1]},
                       when={"data.name=reuters-r8": {"strong.max_length": 128}})
    points = expand(spec, tmp_path)
    assert len(points) == 8
    assert spec.group_keys == ["data.name", "strong.loss"]
    for point, cfg in points:
        assert cfg.strong.epochs == 1 and cfg.seed == point["seed"]
        assert cfg.strong.loss == point["strong.loss"]
        assert cfg.strong.max_length == (128 if point["data.name"] == "reuters-r8" else 64)


def test_a_bad_point_fails_before_anything_runs(tmp_path):
    spec = SweepConfig(base=None, grid={"strong.loss": ["xent", "hinge"]})
    with pytest.raises(ConfigError, match="config key 'strong.loss'"):
        expand(spec, tmp_path)
    (tmp_path / "s.yaml").write_text("grid: {seed: [0]}\nbogus: 1\n")
    with pytest.raises(ConfigError, match="key 'bogus'"):
        load_sweep(tmp_path / "s.yaml")


def test_shipped_sweep_configs_expand(tmp_path):
    shutil.copyfile(REPO / "params.yaml", tmp_path / "params.yaml")
    for path in (REPO / "configs").glob("sweep-*.yaml"):
        assert expand(load_sweep(path), tmp_path), path


@pytest.mark.slow
def test_sweep_flow_runs_aggregates_and_reuses_shared_work(project, capsys):
    from mlflow import MlflowClient

    from cli.main import main

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

    client = MlflowClient()
    parents = client.search_runs(client.get_experiment_by_name("w2s").experiment_id,
                                 "tags.method = 'sweep'")
    assert len(parents) == 1
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"results.csv", "results.md", "pgr.png", "points.json"} <= artifacts
    children = client.search_runs([parents[0].info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert len(children) == 4


def test_variants_are_one_more_axis(tmp_path):
    spec = SweepConfig(base=None, variants={"naive": {"strong.loss": "xent"},
                                            "boot": {"method": "bootstrap", "bootstrap.intermediate_layers": [1, 3]}},
                       grid={"seed": [0, 1]})
    points = expand(spec, tmp_path)
    assert spec.group_keys == ["variant"] and len(points) == 4
    boot = [cfg for point, cfg in points if point["variant"] == "boot"]
    assert all(c.method == "bootstrap" and c.bootstrap.intermediate_layers == [1, 3] for c in boot)


@pytest.mark.slow
def test_sweep_points_run_on_a_local_dask_cluster(project, capsys):
    from cli.main import main

    spec = (REPO / "configs" / "sweep-tiny.yaml").read_text().replace("seed: [0, 1]", "seed: [0]")
    (project / "sweep.yaml").write_text(spec + "runner: dask\nmax_workers: 1\n")
    assert main(["sweep", "--config", "sweep.yaml"]) == 0
    assert "| strong.loss | seeds | weak acc |" in capsys.readouterr().out
    sweep_dir = next((project / ".w2s" / "sweeps").iterdir())
    rows = json.loads((sweep_dir / "points.json").read_text())
    assert [r["strong.loss"] for r in rows] == ["xent", "logconf"]
    assert rows[1]["reused"]["weak"] and rows[1]["reused"]["ceiling"], "dask workers share the cache"

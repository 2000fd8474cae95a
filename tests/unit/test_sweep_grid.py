"""`w2s sweep`: grid expansion, seed aggregation and the real Prefect flow on a tiny grid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from w2s.errors import ConfigError
from w2s.pipeline.sweep_grid import SweepConfig, expand, load_sweep

REPO = Path(__file__).resolve().parents[2]


def test_grid_expands_to_validated_configs_with_conditional_overrides(tmp_path):
    spec = SweepConfig(
        base=None,
        overrides={"strong.epochs": 1},
        grid={"data.name": ["election-tweets", "reuters-r8"], "strong.loss": ["xent", "product"], "seed": [0, 1]},
        when={"data.name=reuters-r8": {"strong.max_length": 128}},
    )
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


def test_variants_are_one_more_axis(tmp_path):
    spec = SweepConfig(
        base=None,
        variants={
            "naive": {"strong.loss": "xent"},
            "boot": {"method": "bootstrap", "bootstrap.intermediate_layers": [1, 3]},
        },
        grid={"seed": [0, 1]},
    )
    points = expand(spec, tmp_path)
    assert spec.group_keys == ["variant"] and len(points) == 4
    boot = [cfg for point, cfg in points if point["variant"] == "boot"]
    assert all(c.method == "bootstrap" and c.bootstrap.intermediate_layers == [1, 3] for c in boot)


def test_the_comparison_baseline_defaults_to_naive_and_must_be_on_the_grid(tmp_path):
    variants = {"naive": {"method": "naive"}, "smooth": {"method": "smooth"}}
    assert SweepConfig(base=None, variants=variants).comparison_baseline == {"variant": "naive"}
    on_method = SweepConfig(base=None, grid={"method": ["naive", "smooth"], "seed": [0]})
    assert on_method.comparison_baseline == {"method": "naive"}
    assert SweepConfig(base=None, grid={"strong.lr": [1e-4, 1e-5]}).comparison_baseline == {}
    assert SweepConfig(base=None, grid={"strong.lr": [1e-4, 1e-5]}, baseline={"strong.lr": 1e-4}).comparison_baseline
    (tmp_path / "s.yaml").write_text("variants: {a: {}, b: {}}\nbaseline: {variant: c}\n")
    with pytest.raises(ConfigError, match=r"baseline variant=c is not among the values of 'variant'"):
        load_sweep(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("grid: {seed: [0, 1]}\nbaseline: {method: naive}\n")
    with pytest.raises(ConfigError, match="baseline key 'method' is not a grid axis"):
        load_sweep(tmp_path / "s.yaml")

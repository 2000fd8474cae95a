"""The PGR-vs-size figure and the `w2s tiny-lms` argument checks (fast: no model is built)."""

from __future__ import annotations

import pytest

from w2s.analysis.plots import plot_pgr_vs_size
from w2s.cli.main import main
from w2s.core.models.tiny import parse_size, series_folder
from w2s.errors import ConfigError


def _row(weak: str, strong: str, pgr: float | None, w2s: float) -> dict:
    return {
        "weak.encoder.model": weak,
        "strong.model": strong,
        "seeds": [0, 1, 2],
        "weak_acc_mean": 0.6,
        "w2s_acc_mean": w2s,
        "w2s_acc_se": 0.01,
        "ceiling_acc_mean": 0.8,
        "strong_budget_acc_mean": 0.65,
        "pgr": pgr,
        "pgr_seed_se": 0.05 if pgr is not None else None,
    }


ROWS = [
    _row("models/lm/qwen2-h32-l1", "models/lm/qwen2-h128-l2", 0.3, 0.66),
    _row("models/lm/qwen2-h32-l1", "models/lm/qwen2-h256-l4", 0.5, 0.70),
    _row("models/lm/qwen2-h64-l2", "models/lm/qwen2-h128-l2", None, 0.61),  # undefined PGR: left out
    _row("models/lm/qwen2-h64-l2", "models/lm/qwen2-h256-l4", 0.4, 0.68),
]
SIZES = {"models/lm/qwen2-h128-l2": 700_000, "models/lm/qwen2-h256-l4": 3_600_000}


def test_plot_pgr_vs_size_draws_a_line_per_weak_model_without_undefined_pgrs(tmp_path):
    path = tmp_path / "pgr_vs_size.png"
    drawn = plot_pgr_vs_size(ROWS, "strong.model", "weak.encoder.model", SIZES, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn == {"weak qwen2-h32-l1": [(700_000, 0.3), (3_600_000, 0.5)], "weak qwen2-h64-l2": [(3_600_000, 0.4)]}


def test_plot_pgr_vs_size_without_a_weak_key_draws_one_line(tmp_path):
    path = tmp_path / "one.png"
    drawn = plot_pgr_vs_size(ROWS, "strong.model", None, SIZES, path)
    assert list(drawn) == ["weak"] and len(drawn["weak"]) == 3  # every row on one line, the undefined PGR left out


def test_plot_pgr_vs_size_names_a_missing_size(tmp_path):
    path = tmp_path / "x.png"
    with pytest.raises(ValueError, match="qwen2-h256-l4"):
        plot_pgr_vs_size(ROWS, "strong.model", "weak.encoder.model", {"models/lm/qwen2-h128-l2": 1}, path)
    with pytest.raises(ValueError, match="no rows"):
        plot_pgr_vs_size([], "strong.model", "weak.encoder.model", SIZES, path)
    assert not path.exists()


@pytest.mark.parametrize("spec, expect", [("64x2", (64, 2, 2)), ("256x4", (256, 4, 8)), ("96x3x3", (96, 3, 3))])
def test_parse_size(spec, expect):
    assert parse_size(spec) == expect


@pytest.mark.parametrize("spec", ["64", "64x", "x2", "64x0", "64x2x2x2", "ax2", "100x2x3"])
def test_parse_size_rejects_malformed(spec):
    with pytest.raises(ConfigError):
        parse_size(spec)


def test_series_folder_is_predictable(tmp_path):
    assert series_folder(tmp_path, "qwen2", 64, 2) == tmp_path / "qwen2-h64-l2"


@pytest.mark.parametrize("sizes", ["32x1,64", "32x1,,abc", ","])
def test_tiny_lms_bad_size_is_one_line_and_exit_2(sizes, tmp_path, capsys):
    assert main(["tiny-lms", str(tmp_path / "lm"), "--sizes", sizes]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "lm").exists()


def test_tiny_lms_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tiny-lms", "--help"])
    assert exc.value.code == 0
    assert "w2s tiny-lms models/lm" in capsys.readouterr().out


def test_a_pgr_is_drawn_only_where_the_seeds_resolve_the_ceiling_weak_gap():
    from w2s.analysis.plots import resolved_gap

    row = {"pgr": 0.4, "weak_acc_mean": 0.70, "ceiling_acc_mean": 0.80, "weak_acc_se": 0.01, "ceiling_acc_se": 0.01}
    assert resolved_gap(row)
    assert not resolved_gap({**row, "ceiling_acc_mean": 0.72})  # gap 0.02 < 2 x 0.014
    assert not resolved_gap({**row, "pgr": None})

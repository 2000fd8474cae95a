"""The tuning rule that the student and the strong-on-budget baseline share, on hand-made sweep rows."""

from __future__ import annotations

import json

import pytest

from tools.pick_tuning import main
from w2s.pipeline.tuning import pick, tuned_overrides


def _rows(student: dict, budget: dict, seeds=(0, 1)) -> list[dict]:
    """One row per (epochs, lr, seed); the val accuracies are the given means, +-0.01 by seed."""
    rows = []
    for (epochs, lr), w in student.items():
        for i, seed in enumerate(seeds):
            jitter = 0.01 if i % 2 else -0.01
            rows.append({"strong.epochs": epochs, "strong.lr": lr, "seed": seed, "variant": "naive",
                         "w2s_val_acc": w + jitter, "strong_budget_val_acc": budget[epochs, lr] - jitter})  # fmt: skip
    return rows


STUDENT = {(2, 5e-5): 0.85, (8, 5e-5): 0.83, (2, 1e-4): 0.84, (8, 1e-4): 0.80}
BUDGET = {(2, 5e-5): 0.70, (8, 5e-5): 0.88, (2, 1e-4): 0.80, (8, 1e-4): 0.87}


def test_each_model_gets_the_grid_point_with_its_best_mean_val_accuracy():
    rows = _rows(STUDENT, BUDGET)
    student = pick(rows, ["strong.epochs", "strong.lr"], "w2s_val_acc")
    assert student.values == {"strong.epochs": 2, "strong.lr": 5e-5} and student.score == pytest.approx(0.85)
    assert student.seeds == 2
    out = tuned_overrides(rows)
    assert out["overrides"] == {
        "strong.epochs": 2,
        "strong.lr": 5e-5,
        "strong.budget.epochs": 8,
        "strong.budget.lr": 5e-5,
    }
    assert out["budget"]["score"] == pytest.approx(0.88) and "oracle" in out["rule"]


def test_frozen_axes_map_to_the_budget_overrides_and_ties_keep_the_earlier_point():
    rows = [
        {"strong.frozen.epochs": e, "seed": s, "w2s_val_acc": 0.8, "strong_budget_val_acc": 0.7 + 0.01 * (e == 60)}
        for e in (30, 60)
        for s in (0, 1)
    ]
    out = tuned_overrides(rows)
    assert out["overrides"] == {"strong.frozen.epochs": 30, "strong.budget.epochs": 60}


def test_a_tie_in_counts_keeps_the_earlier_point_whatever_the_float_sums_say():
    """Both points got 1,036 of 1,200 val answers right over three seeds of 400 rows (the tweets
    tuning): summed in their seeds' order the later mean comes out 1e-16 higher, which must not
    break the tie."""
    acc = {(2.0, 5e-5): (342, 355, 339), (4.0, 1e-4): (343, 354, 339)}
    rows = [
        {"strong.epochs": e, "strong.lr": lr, "seed": seed, "w2s_val_acc": n / 400, "strong_budget_val_acc": 0.8}
        for (e, lr), counts in acc.items()
        for seed, n in enumerate(counts)
    ]
    assert pick(rows, ["strong.epochs", "strong.lr"], "w2s_val_acc").values == {"strong.epochs": 2.0, "strong.lr": 5e-5}


def test_points_on_different_seeds_or_a_repeated_point_are_refused():
    rows = _rows(STUDENT, BUDGET)
    with pytest.raises(ValueError, match="different seeds"):
        pick(rows[:-1], ["strong.epochs", "strong.lr"], "w2s_val_acc")
    with pytest.raises(ValueError, match="appears twice"):
        pick([*rows, dict(rows[0], variant="other")], ["strong.epochs", "strong.lr"], "w2s_val_acc")
    with pytest.raises(ValueError, match="no tuning axes"):
        tuned_overrides([{"seed": 0, "w2s_val_acc": 0.5, "strong_budget_val_acc": 0.5}])
    with pytest.raises(ValueError, match="has no strong_budget_val_acc"):
        tuned_overrides([dict(r, strong_budget_val_acc=None) for r in rows])


def test_the_tool_writes_the_picks_into_the_confirmation_config(tmp_path, capsys):
    sweep = tmp_path / "sweep-20260101"
    sweep.mkdir()
    (sweep / "points.json").write_text(json.dumps(_rows(STUDENT, BUDGET)))
    config = tmp_path / "confirm.yaml"
    config.write_text(
        "base: params.yaml\noverrides:\n  split.transfer: 1000\n  # BEGIN tuned (untuned)\n  strong.epochs: 2.0\n"
        "  # END tuned\ngrid:\n  seed: [100]\n"
    )
    assert main([str(sweep), "--write", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["overrides"]["strong.budget.epochs"] == 8
    import yaml

    written = yaml.safe_load(config.read_text())
    assert written["overrides"] == {
        "split.transfer": 1000,
        "strong.epochs": 2,
        "strong.lr": 5e-5,
        "strong.budget.epochs": 8,
        "strong.budget.lr": 5e-5,
    }
    assert "# BEGIN tuned from sweep-20260101" in config.read_text() and written["grid"] == {"seed": [100]}
    assert main([str(tmp_path / "missing")]) == 2

import math

import pytest

from w2s.analysis.aggregate import aggregate_seeds, mean_se


def test_mean_and_standard_error():
    mean, se, n = mean_se([1.0, 2.0, 3.0, None])
    assert (mean, n) == (2.0, 3)
    assert se == pytest.approx(1.0 / math.sqrt(3))  # sample sd 1.0
    assert mean_se([5.0]) == (5.0, None, 1)
    assert mean_se([None]) == (None, None, 0)


def _row(method, seed, weak, w2s, ceiling):
    return {
        "method": method,
        "seed": seed,
        "weak_acc": weak,
        "w2s_acc": w2s,
        "ceiling_acc": ceiling,
        "weak_auroc": weak,
        "w2s_auroc": w2s,
        "ceiling_auroc": ceiling,
    }


def test_pgr_uses_seed_averaged_baselines_not_the_mean_of_ratios():
    rows = [
        _row("xent", 0, 0.80, 0.90, 1.00),  # per-seed PGR 0.5
        _row("xent", 1, 0.80, 0.81, 0.82),  # per-seed PGR 0.5, tiny gap
        _row("xent", 2, 0.80, 0.86, 0.88),  # per-seed PGR 0.75
        _row("logconf", 0, 0.80, 0.95, 1.00),
    ]
    out = {r["method"]: r for r in aggregate_seeds(rows, ["method"])}
    x = out["xent"]
    assert x["seeds"] == [0, 1, 2]
    assert x["weak_acc_mean"] == pytest.approx(0.80)
    assert x["w2s_acc_mean"] == pytest.approx((0.90 + 0.81 + 0.86) / 3)
    expected = ((0.90 + 0.81 + 0.86) / 3 - 0.80) / ((1.00 + 0.82 + 0.88) / 3 - 0.80)
    assert x["pgr"] == pytest.approx(expected)
    assert x["pgr"] != pytest.approx((0.5 + 0.5 + 0.75) / 3)
    assert x["pgr_seed_se"] == pytest.approx(mean_se([0.5, 0.5, 0.75])[1])
    assert out["logconf"]["pgr"] == pytest.approx(0.75) and out["logconf"]["w2s_acc_se"] is None


def test_pgr_is_null_when_the_averaged_ceiling_does_not_beat_weak():
    out = aggregate_seeds([_row("xent", 0, 0.9, 0.8, 0.85), _row("xent", 1, 0.9, 0.8, 0.95)], ["method"])
    assert out[0]["pgr"] is None  # averaged ceiling 0.9 == averaged weak 0.9
    assert out[0]["pgr_defined_seeds"] == 1


def test_selection_and_curve_diagnostics_aggregate_and_render_with_their_spread():
    from w2s.analysis.tables import dynamics_table, selection_table

    rows = []
    for seed, (regret, decline) in enumerate([(0.00, 0.02), (0.02, 0.04), (0.01, 0.00)]):
        row = _row("xent", seed, 0.8, 0.85, 0.9)
        row.update(
            selection_chosen_acc=0.85 - regret,
            selection_best_acc=0.85,
            selection_regret=regret,
            student_steps=126.0,
            val_acc_peak=0.88,
            val_acc_last=0.88 - decline,
            val_acc_decline=decline,
            val_acc_weak_pick=0.87,
            peak_epoch=1.0 + seed,
        )
        rows.append(row)
    (r,) = aggregate_seeds(rows, ["method"])
    assert r["selection_regret_mean"] == pytest.approx(0.01) and r["selection_regret_se"] == pytest.approx(
        mean_se([0.0, 0.02, 0.01])[1]
    )
    assert r["val_acc_decline_mean"] == pytest.approx(0.02) and r["peak_epoch_mean"] == pytest.approx(2.0)
    sel = selection_table([r], ["method"]).splitlines()[-1]
    assert sel == "| xent | 3 | 0.840 ± 0.006 | 0.850 ± 0.000 | 0.010 ± 0.006 |"
    dyn = dynamics_table([r], ["method"]).splitlines()[-1]
    assert dyn == "| xent | 126 | 0.870 ± 0.000 | 0.880 ± 0.000 | 0.860 ± 0.012 | 0.020 ± 0.012 | 2.00 ± 0.58 |"


def test_gap_and_gain_over_the_budget_are_paired_by_seed_inside_each_configuration():
    from w2s.analysis.tables import within_table

    rows = []
    for seed, (weak, ceiling, w2s, budget) in enumerate([(0.70, 0.90, 0.80, 0.75), (0.72, 0.88, 0.83, 0.74)]):
        rows.append({**_row("xent", seed, weak, w2s, ceiling), "strong_budget_acc": budget})
    (x,) = aggregate_seeds(rows, ["method"])
    # gaps 0.20 and 0.16: mean 0.18, sd 0.02 * sqrt(2), se 0.02, t(0.975, 1) = 12.706
    assert x["within_gap_mean"] == pytest.approx(0.18)
    assert x["within_gap_lo"] == pytest.approx(0.18 - 12.7062 * 0.02, abs=1e-4)
    assert x["within_gap_hi"] == pytest.approx(0.18 + 12.7062 * 0.02, abs=1e-4)
    # w2s - budget: 0.05 and 0.09
    assert x["within_over_budget_mean"] == pytest.approx(0.07) and x["within_over_budget_n"] == 2
    assert x["within_gap_ood_mean"] is None and x["within_gap_ood_n"] == 0  # no OOD split
    table = within_table([x], ["method"])
    # p on 1 degree of freedom (Cauchy): 1 - (2 / pi) atan(t); gap t = 9: 0.0705, over budget
    # t = 0.07 / 0.02 = 3.5: 0.1772. Holm over the 2: 0.141 and max(0.141, 0.177) = 0.177
    assert x["within_gap_p"] == pytest.approx(1 - 2 / math.pi * math.atan(9))
    assert x["within_over_budget_p_holm"] == pytest.approx(1 - 2 / math.pi * math.atan(3.5))
    assert "| xent | +0.180 [-0.074, +0.434] | 0.07 (0.14) | +0.070 [-0.184, +0.324] | 0.18 (0.18) | 2 |" in table
    assert "OOD" not in table

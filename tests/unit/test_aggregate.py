import math

import pytest

from w2s.pipeline.aggregate import aggregate_seeds, mean_se


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

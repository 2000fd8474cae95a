"""The statistics behind every claim: paired t-intervals over seeds, the minimum resolvable gap,
the two-stage PGR bootstrap, and how the sweep's aggregate and report use them. Expected values
are computed by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from w2s.analysis.aggregate import aggregate_seeds
from w2s.analysis.tables import differences_table, fmt_pgr, markdown_table
from w2s.config import load_config
from w2s.core.stats import bootstrap_pgr, gate_pgrs, gated_pgr, min_gap, paired_differences, t_interval
from w2s.errors import ConfigError


def test_t_interval_by_hand():
    # mean 0.02; sample sd sqrt((1+0+1+4+4)e-4 / 4) = 0.0158114; se 0.0070711; t(0.975, 4) = 2.7764451
    ci = t_interval([0.01, 0.02, 0.03, 0.00, 0.04])
    assert ci is not None and ci.n == 5 and ci.mean == pytest.approx(0.02)
    assert ci.lo == pytest.approx(0.02 - 2.7764451 * 0.0070711, abs=1e-6)
    assert ci.hi == pytest.approx(0.02 + 2.7764451 * 0.0070711, abs=1e-6)
    assert ci.excludes_zero and ci.supports_claim
    four = t_interval([0.01, 0.02, 0.03, 0.04])  # excludes zero, but four seeds support no claim
    assert four is not None and four.excludes_zero and not four.supports_claim
    one = t_interval([0.5])
    assert one is not None and (one.lo, one.hi, one.excludes_zero) == (None, None, False)
    assert t_interval([]) is None


def test_differences_are_paired_by_seed_on_the_seeds_both_ran():
    method = {0: 0.90, 1: 0.858, 2: 0.792, 3: 0.88}
    naive = {0: 0.88, 1: 0.84, 2: 0.77, 4: 0.99}  # seed 4 has no partner, seed 3 neither
    diff = paired_differences(method, naive)
    assert diff is not None and diff.n == 3
    assert diff.mean == pytest.approx((0.02 + 0.018 + 0.022) / 3)
    # unpaired, the two methods' spreads over seeds (sd about 0.05) would swamp a 0.02 difference;
    # paired, the per-seed differences (sd 0.002) give a t-interval of 0.02 ± 4.303 * 0.002 / sqrt 3
    assert diff.lo == pytest.approx(0.02 - 4.3026527 * 0.002 / math.sqrt(3), abs=1e-6)
    assert diff.lo > 0


def test_min_gap_is_three_standard_errors_of_a_test_accuracy():
    # p = 0.85 at n = 1000: se = sqrt(0.85 * 0.15 / 1000) = 0.0112916; 3 se = 0.0338748
    assert min_gap(0.80, 0.90, 1000) == pytest.approx(0.0338748, abs=1e-7)
    assert min_gap(0.80, 0.90, 1000, 0.05) == 0.05
    assert gated_pgr(0.80, 0.83, 0.83, min_gap(0.80, 0.83, 1000)) is None  # 3-point gap < 3.4
    assert gated_pgr(0.80, 0.83, 0.83, 0.0) == pytest.approx(1.0)
    assert gated_pgr(0.80, 0.95, 0.90, min_gap(0.80, 0.90, 1000)) == pytest.approx(1.5)
    assert gated_pgr(0.80, 0.85, 0.80, 0.0) is None  # no gap at all


def test_a_run_reports_no_pgr_on_a_gap_its_test_set_cannot_resolve():
    metrics = {
        "weak_acc": 0.80, "w2s_acc": 0.82, "ceiling_acc": 0.83, "pgr": 2 / 3, "n_test": 1000.0,
        "weak_auroc": 0.85, "w2s_auroc": 0.90, "ceiling_auroc": 0.95, "pgr_auroc": 0.5,
    }  # fmt: skip
    out = gate_pgrs(metrics)
    assert out["pgr"] is None and out["gap"] == pytest.approx(0.03)
    assert out["min_gap"] == pytest.approx(3 * math.sqrt(0.815 * 0.185 / 1000))
    assert out["pgr_auroc"] == pytest.approx(0.5), "the AUROC gap of 10 points is resolved"
    assert gate_pgrs(metrics, 0.0)["pgr"] == pytest.approx(2 / 3)
    assert metrics["pgr"] == pytest.approx(2 / 3), "the input is not modified"


def test_eval_min_gap_is_auto_a_gap_or_an_error():
    assert load_config(None, []).eval.min_gap == "auto"
    assert load_config(None, ["eval.min_gap=0.05"]).eval.min_gap == 0.05
    with pytest.raises(ConfigError, match="eval.min_gap"):
        load_config(None, ["eval.min_gap=1.5"])


def _correct(n: int, right: int) -> np.ndarray:
    return (np.arange(n) < right).astype(float)


def test_the_pgr_bootstrap_covers_the_estimate_and_narrows_with_more_rows():
    # every seed: weak 70%, student 80%, ceiling 90% right, nested (a row the weak model gets
    # right every model gets right): PGR 0.5
    def ci(n: int, seeds: int = 5) -> tuple[float, float]:
        out = bootstrap_pgr(
            [_correct(n, int(0.7 * n))] * seeds,
            [_correct(n, int(0.8 * n))] * seeds,
            [_correct(n, int(0.9 * n))] * seeds,
        )
        assert out is not None
        return out

    lo, hi = ci(400)
    assert lo < 0.5 < hi and hi - lo < 0.3
    lo_big, hi_big = ci(4000)
    assert lo_big < 0.5 < hi_big and (hi_big - lo_big) < (hi - lo) / 2  # about 1/sqrt(10) as wide
    assert ci(400) == (lo, hi), "a fixed bootstrap seed: the same interval every time"


def test_the_pgr_bootstrap_has_no_interval_on_an_unresolved_gap():
    n = 200
    weak = [_correct(n, 160)] * 3
    assert bootstrap_pgr(weak, [_correct(n, 161)] * 3, [_correct(n, 161)] * 3) is None  # half a point
    with pytest.raises(ValueError):
        bootstrap_pgr(weak, [_correct(n, 161)] * 2, weak)


def _row(method: str, seed: int, w2s: float, weak: float = 0.80, ceiling: float = 0.90, **extra) -> dict:
    return {"method": method, "seed": seed, "point": len(method) * 10 + seed, "weak_acc": weak, "w2s_acc": w2s,
            "ceiling_acc": ceiling, "n_test": 1000.0, "min_gap": min_gap(weak, ceiling, 1000), **extra}  # fmt: skip


def test_the_sweep_aggregate_pairs_every_method_with_naive_and_gates_pgr():
    naive = [0.84, 0.85, 0.83, 0.86, 0.85]
    better = [0.86, 0.86, 0.85, 0.88, 0.86]  # +0.02 +0.01 +0.02 +0.02 +0.01: mean 0.016
    rows = [_row("naive", s, a) for s, a in enumerate(naive)]
    rows += [_row("corrector", s, a) for s, a in enumerate(better)]
    rows += [_row("flat", s, 0.85, ceiling=0.82) for s in range(5)]  # a 2-point gap: unresolved
    out = {r["method"]: r for r in aggregate_seeds(rows, ["method"], {"method": "naive"})}

    c = out["corrector"]
    assert c["diff_w2s_acc_mean"] == pytest.approx(0.016)
    half = 2.7764451 * math.sqrt(1.2e-4 / 4) / math.sqrt(5)  # squared deviations: 3 * 0.004^2 + 2 * 0.006^2
    assert (c["diff_w2s_acc_lo"], c["diff_w2s_acc_hi"]) == (pytest.approx(0.016 - half), pytest.approx(0.016 + half))
    assert c["diff_w2s_acc_n"] == 5 and c["diff_w2s_acc_claim"] is True
    assert "diff_w2s_acc_mean" not in out["naive"], "the baseline is not compared with itself"
    assert "diff_w2s_acc_ood_mean" not in c, "no OOD split, no OOD comparison"
    assert c["pgr"] == pytest.approx((0.862 - 0.80) / 0.10) and c["pgr_status"] == "ok"
    assert out["flat"]["pgr"] is None and out["flat"]["pgr_status"] == "gap too small"
    assert c["pgr_lo"] is None, "no per-row correctness given: no bootstrap interval"

    table = markdown_table(list(out.values()), ["method"])
    assert "| flat | 5 |" in table and "gap too small" in table
    diffs = differences_table(list(out.values()), ["method"], {"method": "naive"})
    line = next(x for x in diffs.splitlines() if x.startswith("| corrector |"))
    assert line == f"| corrector | +0.016 [{0.016 - half:+.3f}, {0.016 + half:+.3f}] | 5 | yes | yes |"


def test_the_sweep_aggregate_bootstraps_pgr_from_per_row_correctness():
    rows = [_row("naive", s, 0.80 + 0.05) for s in range(5)]
    n = 1000
    frame = pd.DataFrame({"weak": _correct(n, 800), "w2s": _correct(n, 850), "ceiling": _correct(n, 900)})
    out = aggregate_seeds(rows, ["method"], correct={r["point"]: frame for r in rows})[0]
    assert out["pgr"] == pytest.approx(0.5) and out["pgr_lo"] < 0.5 < out["pgr_hi"]
    assert fmt_pgr(out) == f"0.50 [{out['pgr_lo']:.2f}, {out['pgr_hi']:.2f}]"


def test_the_misfit_slope_is_ols_with_a_ci_from_resampling_seeds():
    from w2s.core.stats import clustered_slope

    rng = np.random.default_rng(0)
    x = np.tile([0.01, 0.02, 0.03, 0.04], 6)
    seeds = np.repeat(np.arange(6), 4)
    y = 0.005 + 1.5 * x + rng.normal(scale=0.002, size=len(x))
    fit = clustered_slope(x, y, seeds)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    assert fit["slope_lo"] < slope < fit["slope_hi"] and fit["slope_hi"] - fit["slope_lo"] < 0.3
    assert abs(slope - 1.5) < 0.1, "the fit recovers the slope the data were made with"
    two = clustered_slope(x[:8], y[:8], seeds[:8])  # two seeds: no interval
    assert two["slope"] is not None and two["slope_lo"] is None
    assert clustered_slope([0.1, 0.1, 0.1], [1, 2, 3], [0, 1, 2])["slope"] is None

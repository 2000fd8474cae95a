"""The statistics behind every claim: paired t-intervals and their p-values over seeds, Holm's
adjustment, the minimum resolvable gap, the Fieller interval of PGR, and how the sweep's aggregate
and report use them. Expected values are computed by hand in the comments (the interval's coverage
is simulated in test_pgr_coverage.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from w2s.analysis.aggregate import aggregate_seeds
from w2s.analysis.tables import differences_table, fmt_pgr, markdown_table
from w2s.config import load_config
from w2s.core.stats import (
    gate_pgrs,
    gated_pgr,
    holm,
    is_claim,
    min_gap,
    paired_differences,
    pgr_interval,
    ratio_interval,
    t_interval,
)
from w2s.errors import ConfigError


def test_t_interval_and_its_p_value_by_hand():
    """mean 0.02; sample sd sqrt((1+0+1+4+4)e-4 / 4) = 0.0158114; se 0.0070711; t(0.975, 4) =
    2.7764451. The t statistic is 0.02 / 0.0070711 = 2 sqrt 2, and Student's t on 4 degrees of
    freedom has the closed form F(t) = 1/2 + (3/8) u (1 - x / 12), u = t / sqrt(1 + t^2/4),
    x = t^2 / (1 + t^2/4): at t^2 = 8, u = 2 sqrt(2/3) and x = 8/3, so the two-sided
    p = 2 (1 - F) = 1 - (3/4) 2 sqrt(2/3) (7/9) = 1 - (7/6) sqrt(2/3) = 0.0474207."""
    ci = t_interval([0.01, 0.02, 0.03, 0.00, 0.04])
    assert ci is not None and ci.n == 5 and ci.mean == pytest.approx(0.02)
    assert ci.lo == pytest.approx(0.02 - 2.7764451 * 0.0070711, abs=1e-6)
    assert ci.hi == pytest.approx(0.02 + 2.7764451 * 0.0070711, abs=1e-6)
    assert ci.p == pytest.approx(1 - 7 / 6 * math.sqrt(2 / 3), abs=1e-7)
    assert ci.excludes_zero and ci.p < 0.05, "the interval and the test agree"
    assert is_claim(ci.p, ci.n) and not is_claim(ci.p, 4), "four seeds support no claim"
    assert not is_claim(0.05, 10) and not is_claim(None, 10)
    one = t_interval([0.5])
    assert one is not None and (one.lo, one.hi, one.p, one.excludes_zero) == (None, None, None, False)
    assert t_interval([]) is None
    assert t_interval([0.01, 0.01]).p == 0.0 and t_interval([0.0, 0.0]).p == 1.0  # no spread


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted: 0.005, 0.01, 0.03, 0.04, multiplied by
    4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04; step-down keeps each at least the one before it, so the
    last becomes max(0.06, 0.04) = 0.06. In input order: 0.03, 0.06, 0.06, 0.02. Only 0.005 and
    0.01 stay under 0.05, where unadjusted all four were."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a comparison without a test does not count: m = 2, so 0.01 -> 0.02 and 0.2 -> 0.2
    assert holm([0.2, None, 0.01]) == [pytest.approx(0.2), None, pytest.approx(0.02)]
    assert holm([0.6, 0.7]) == [1.0, 1.0], "capped at 1"
    assert holm([0.03]) == [0.03] and holm([]) == []
    # Holm never adjusts below the raw p-value, nor above Bonferroni's m p
    ps = [0.001, 0.2, 0.013, 0.015, 0.5]
    for raw, adj in zip(ps, holm(ps), strict=True):
        assert raw <= adj <= min(1.0, 5 * raw)


def _p_from_printed(mean: float, lo: float, hi: float, seeds: int = 5) -> float:
    """The two-sided paired t-test p-value behind a printed 95% t-interval."""
    from scipy import stats

    se = (hi - lo) / 2 / stats.t.ppf(0.975, seeds - 1)
    return float(2 * stats.t.sf(abs(mean) / se, seeds - 1))


def test_holm_on_the_intervals_docs_results_printed():
    """The p-values recovered from the intervals of the earlier results (5 seeds, df 4) are the
    ones the review quoted, and Holm over each table's comparisons gives its verdict: on tweets
    (3 comparisons to naive) the corrector's +0.020 is a lead, not a claim; under shift (9 in
    distribution) only the corrector and the two harmful ensemble ablations survive."""
    tweets = {
        "hardened": (-0.005, -0.017, 0.007),
        "corrector": (0.020, 0.005, 0.035),
        "confidence": (0.004, -0.015, 0.022),
    }
    p = {k: _p_from_printed(*v) for k, v in tweets.items()}
    assert p["corrector"] == pytest.approx(0.021, abs=0.001)
    adjusted = dict(zip(p, holm(list(p.values())), strict=True))
    assert adjusted["corrector"] == pytest.approx(3 * p["corrector"]) == pytest.approx(0.062, abs=0.003)
    assert not is_claim(adjusted["corrector"], 5)

    shift = {
        "hardened": (-0.006, -0.018, 0.006),
        "corrector": (0.049, 0.031, 0.066),
        "raven": (0.010, 0.004, 0.017),
        "ensemble": (-0.004, -0.008, -0.001),
        "fixed weights": (-0.076, -0.102, -0.049),
        "easy phase only": (-0.082, -0.112, -0.053),
        "learned weights only": (-0.001, -0.004, 0.001),
        "unigrams": (0.012, -0.002, 0.026),
        "trigrams": (-0.006, -0.016, 0.005),
    }
    p = {k: _p_from_printed(*v) for k, v in shift.items()}
    assert p["raven"] == pytest.approx(0.013, abs=0.001) and p["corrector"] == pytest.approx(0.0015, abs=0.0002)
    assert _p_from_printed(-0.033, -0.056, -0.011) == pytest.approx(0.015, abs=0.001)  # hardened, OOD column
    adjusted = dict(zip(p, holm(list(p.values())), strict=True))
    claims = {k for k, v in adjusted.items() if is_claim(v, 5)}
    assert claims == {"corrector", "fixed weights", "easy phase only"}
    assert 0.05 < adjusted["raven"] < 9 * p["raven"], "Holm is less severe than Bonferroni, and still no claim"


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


def test_pgr_interval_by_hand_and_by_its_definition():
    """Gap 0.10 on every seed, student gains 0.03..0.07: the denominator has no spread, so
    Fieller's interval is the t-interval of the gains over 0.10: mean 0.05, se 0.0070711,
    half-width 2.7764451 * 0.0070711 = 0.019632, PGR 0.5 ± 0.19632."""
    weak = [0.80] * 5
    lo, hi = pgr_interval(weak, [0.83, 0.84, 0.85, 0.86, 0.87], [0.90] * 5)
    assert (lo, hi) == (pytest.approx(0.5 - 0.19632, abs=1e-5), pytest.approx(0.5 + 0.19632, abs=1e-5))

    # gaps that vary: each bound is where the t statistic of (gain - θ gap) over seeds is exactly
    # the 97.5% quantile, and the point estimate (mean gain / mean gap) lies between them
    from scipy import stats

    gain = np.array([0.02, 0.05, 0.03, 0.06, 0.04])
    gap = np.array([0.09, 0.12, 0.07, 0.11, 0.10])
    lo, hi = pgr_interval(np.zeros(5), gain, gap)
    assert lo < gain.mean() / gap.mean() < hi
    for theta in (lo, hi):
        d = gain - theta * gap
        assert abs(d.mean()) / (d.std(ddof=1) / math.sqrt(5)) == pytest.approx(stats.t.ppf(0.975, 4))
    # vectorised over leading axes: the same numbers row by row
    vlo, vhi = ratio_interval(np.stack([gain, gain * 2]), np.stack([gap, gap * 2]))
    assert (vlo[0], vhi[0]) == (pytest.approx(lo), pytest.approx(hi)) and vlo[1] == pytest.approx(lo)


def test_pgr_interval_exists_exactly_when_the_seeds_resolve_the_gap():
    weak, student = [0.80] * 5, [0.81, 0.80, 0.82, 0.80, 0.81]
    # gaps +0.03 -0.01 +0.04 +0.00 +0.02: t-interval of the gap includes zero -> no interval
    unresolved = [0.83, 0.79, 0.84, 0.80, 0.82]
    assert not t_interval(np.subtract(unresolved, weak)).excludes_zero
    assert pgr_interval(weak, student, unresolved) is None
    resolved = [0.83, 0.82, 0.84, 0.83, 0.82]  # gaps 0.02..0.04, t about 9
    assert t_interval(np.subtract(resolved, weak)).excludes_zero
    assert pgr_interval(weak, student, resolved) is not None
    assert pgr_interval([0.8], [0.85], [0.9]) is None, "one seed: no spread to build an interval on"
    with pytest.raises(ValueError):
        pgr_interval(weak, student[:4], resolved)


def _row(method: str, seed: int, w2s: float, weak: float = 0.80, ceiling: float = 0.90, **extra) -> dict:
    return {"method": method, "seed": seed, "point": len(method) * 10 + seed, "weak_acc": weak, "w2s_acc": w2s,
            "ceiling_acc": ceiling, "n_test": 1000.0, "min_gap": min_gap(weak, ceiling, 1000), **extra}  # fmt: skip


def test_the_sweep_aggregate_pairs_every_method_with_naive_holm_adjusts_and_gates_pgr():
    naive = [0.84, 0.85, 0.83, 0.86, 0.85]
    better = [0.86, 0.86, 0.85, 0.88, 0.86]  # +0.02 +0.01 +0.02 +0.02 +0.01: mean 0.016
    lucky = [0.85, 0.87, 0.86, 0.86, 0.89]  # +0.01 +0.02 +0.03 +0.00 +0.04: p = 0.0474 (above)
    rows = [_row("naive", s, a) for s, a in enumerate(naive)]
    rows += [_row("corrector", s, a) for s, a in enumerate(better)]
    rows += [_row("lucky", s, a) for s, a in enumerate(lucky)]
    rows += [_row("flat", s, 0.85, ceiling=0.82) for s in range(5)]  # a 2-point gap: unresolved
    out = {r["method"]: r for r in aggregate_seeds(rows, ["method"], {"method": "naive"})}

    c = out["corrector"]
    assert c["diff_w2s_acc_mean"] == pytest.approx(0.016)
    se = math.sqrt(1.2e-4 / 4) / math.sqrt(5)  # squared deviations: 3 * 0.004^2 + 2 * 0.006^2
    half = 2.7764451 * se
    assert (c["diff_w2s_acc_lo"], c["diff_w2s_acc_hi"]) == (pytest.approx(0.016 - half), pytest.approx(0.016 + half))
    assert "diff_w2s_acc_mean" not in out["naive"], "the baseline is not compared with itself"
    assert "diff_w2s_acc_ood_mean" not in c, "no OOD split, no OOD comparison"
    # three comparisons to naive (corrector, lucky, flat), one family: Holm multiplies the
    # smallest p by 3 and the next by 2. lucky's interval excludes zero at p = 0.047, a lead;
    # adjusted to 0.095, no claim.
    from scipy import stats

    p = {k: out[k]["diff_w2s_acc_p"] for k in ("corrector", "lucky", "flat")}
    assert p["corrector"] == pytest.approx(2 * stats.t.sf(0.016 / se, 4))
    assert p["lucky"] == pytest.approx(1 - 7 / 6 * math.sqrt(2 / 3))
    assert out["corrector"]["diff_w2s_acc_p_holm"] == pytest.approx(3 * p["corrector"])
    assert out["lucky"]["diff_w2s_acc_p_holm"] == pytest.approx(2 * p["lucky"])
    assert out["flat"]["diff_w2s_acc_p_holm"] == pytest.approx(max(2 * p["lucky"], p["flat"]))
    assert {k for k in p if out[k]["diff_w2s_acc_claim"]} == {"corrector"}
    assert out["lucky"]["diff_w2s_acc_lo"] > 0 and out["lucky"]["diff_w2s_acc_family"] == 3

    # PGR: gap 0.10 on every seed, gains 0.06 0.06 0.05 0.08 0.06 (sd 0.010954): 0.62 ± t se / 0.1
    pgr_half = 2.7764451 * math.sqrt(1.2e-4) / math.sqrt(5) / 0.10
    assert c["pgr"] == pytest.approx(0.62) and c["pgr_status"] == "ok"
    assert (c["pgr_lo"], c["pgr_hi"]) == (pytest.approx(0.62 - pgr_half), pytest.approx(0.62 + pgr_half))
    assert fmt_pgr(c) == f"0.62 [{0.62 - pgr_half:.2f}, {0.62 + pgr_half:.2f}]"
    assert out["flat"]["pgr"] is None and out["flat"]["pgr_status"] == "gap too small"

    table = markdown_table(list(out.values()), ["method"])
    assert "| flat | 5 |" in table and "gap too small" in table
    diffs = differences_table(list(out.values()), ["method"], {"method": "naive"})
    assert "Holm-adjusted over the 3 comparisons of this table" in diffs
    assert "| method | w2s_acc − baseline [95% CI] | paired seeds | p | p, Holm (3) | claim (≥ 5 seeds) |" in diffs
    line = next(x for x in diffs.splitlines() if x.startswith("| corrector |"))
    ps = f"{p['corrector']:.2g} | {3 * p['corrector']:.2g}"
    assert line == f"| corrector | +0.016 [{0.016 - half:+.3f}, {0.016 + half:+.3f}] | 5 | {ps} | yes |"
    assert next(x for x in diffs.splitlines() if x.startswith("| lucky |")).endswith("| 5 | 0.047 | 0.095 | no |")


def test_a_pgr_without_an_interval_says_why():
    # gaps +0.03 -0.01 +0.04 +0.00 +0.02 (mean 0.016): the averaged gap passes min_gap 0 but the
    # seeds do not resolve it, so the ratio has no bounded interval
    ceilings = [0.83, 0.79, 0.84, 0.80, 0.82]
    rows = [_row("naive", s, 0.812, ceiling=c, min_gap=0.0) for s, c in enumerate(ceilings)]
    (out,) = aggregate_seeds(rows, ["method"])
    assert out["pgr"] == pytest.approx(0.012 / 0.016) and out["pgr_lo"] is None
    assert fmt_pgr(out) == "0.75 [unbounded]"
    (one,) = aggregate_seeds(rows[:1], ["method"])
    assert fmt_pgr(one) == "0.40", "one seed: the value alone"


def test_the_within_table_holm_adjusts_over_its_distinct_differences():
    from w2s.analysis.tables import within_table

    rows = []
    for method, offset in (("naive", 0.0), ("corrector", 0.02)):
        rows += [
            _row(method, s, 0.85 + offset, ceiling=0.90 + 0.01 * (s % 2), strong_budget_acc=0.84 + 0.01 * s)
            for s in range(5)
        ]
    out = aggregate_seeds(rows, ["method"])
    # both configurations share each seed's weak model and ceiling: one gap test, shown twice,
    # counted once; the two over-budget differences are two more (no OOD split): a family of 3
    assert out[0]["within_gap_p"] == out[1]["within_gap_p"] and out[0]["within_gap_family"] == 3
    expected = holm([out[0]["within_gap_p"], out[0]["within_over_budget_p"], out[1]["within_over_budget_p"]])
    got = [out[0]["within_gap_p_holm"], out[0]["within_over_budget_p_holm"], out[1]["within_over_budget_p_holm"]]
    assert got == pytest.approx(expected) and out[1]["within_gap_p_holm"] == out[0]["within_gap_p_holm"]
    text = within_table(out, ["method"])
    assert "Holm-adjusted over the 3 distinct differences of this table" in text and "p (Holm, 3)" in text


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

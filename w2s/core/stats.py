"""Statistics for claims about weak-to-strong results: paired differences over seeds with a
t-interval and its p-value, Holm's adjustment across the comparisons of one table, a minimum
resolvable gap for PGR, and a Fieller interval for PGR over seeds.

Why paired: every configuration of a sweep runs on the same seeds, and a seed fixes the splits
and the weak model, so most of the seed-to-seed spread is shared by two methods. The difference
per seed removes it; an unpaired `mean ± se` of each method keeps it, and a real difference
drowns in the spread the two methods share.

Why Holm: a table of k comparisons against one baseline offers k chances of an interval that
excludes zero by luck. Holm's step-down adjustment keeps the chance of any false claim in the
table at 5 % (whatever the comparisons' correlation) and is uniformly more powerful than
Bonferroni. A claim needs the adjusted p-value below 0.05 on at least `CLAIM_SEEDS` seeds.

Why a minimum gap: PGR divides by ceiling − weak. When that gap is within what the test set can
resolve, the ratio is noise (a 1-point gap turns a 1-point student difference into PGR ±1), so it
is not reported at all.

Why Fieller for PGR: the seed-averaged PGR is a ratio of two seed means, (student − weak) over
(ceiling − weak). Each seed measures both on its own test rows (the seed draws the splits), so
the spread of the per-seed pairs already holds both sources of error, which seed and which rows;
Fieller's interval inverts the t-test of (gain − θ · gap) = 0 over those pairs, exact for normal
pairs at any number of seeds. A percentile bootstrap over 5 seeds under-covers (it cannot see
past the 5 values it has), and adding a test-row stage on top counts the row noise twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CLAIM_SEEDS = 5  # fewer seeds than this support no claim, whatever the interval says
CLAIM_ALPHA = 0.05  # a claim's Holm-adjusted p-value is below this
MIN_GAP_SE = 3.0  # `eval.min_gap: auto`: this many standard errors of a test accuracy


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval and the two-sided p-value of the t-test of a
    zero mean (bounds and p None when n < 2)."""

    mean: float
    lo: float | None
    hi: float | None
    n: int
    p: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.lo is not None and self.hi is not None and (self.lo > 0 or self.hi < 0)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """Mean, Student-t interval and t-test p-value of `values` (e.g. per-seed paired
    differences); None if empty."""
    from scipy import stats

    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(xs) == 0:
        return None
    mean = float(xs.mean())
    if len(xs) < 2:
        return Interval(mean, None, None, 1)
    se = float(xs.std(ddof=1)) / math.sqrt(len(xs))
    half = float(stats.t.ppf(0.5 + level / 2, len(xs) - 1)) * se
    # se 0: every seed gave the same difference, zero or certainly not zero
    p = float(2 * stats.t.sf(abs(mean) / se, len(xs) - 1)) if se > 0 else float(mean == 0)
    return Interval(mean, mean - half, mean + half, len(xs), p)


def paired_differences(
    values: dict[int, float | None], baseline: dict[int, float | None], level: float = 0.95
) -> Interval | None:
    """`values - baseline` paired by seed (only seeds both have), with a t-interval."""
    seeds = sorted(s for s in values.keys() & baseline.keys() if values[s] is not None and baseline[s] is not None)
    return t_interval([float(values[s]) - float(baseline[s]) for s in seeds], level)  # type: ignore[arg-type]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values of one family of comparisons, in input order.

    The m defined p-values, sorted p(1) <= ... <= p(m), become max over j <= i of
    min(1, (m - j + 1) p(j)): the smallest is multiplied by m, the next by m - 1, and so on, never
    below an adjusted value before it. None (a comparison with no test) stays None and does not
    count in m."""
    defined = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(defined)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(defined)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def is_claim(p_adjusted: float | None, n: int) -> bool:
    """The bar for a claim: the multiplicity-adjusted p-value below `CLAIM_ALPHA` on at least
    `CLAIM_SEEDS` paired seeds."""
    return p_adjusted is not None and p_adjusted < CLAIM_ALPHA and n >= CLAIM_SEEDS


def accuracy_se(acc: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on n test rows."""
    return math.sqrt(max(acc * (1 - acc), 0.0) / n) if n > 0 else math.inf


def min_gap(weak: float, ceiling: float, n_test: int, setting: float | str = "auto") -> float:
    """The smallest ceiling − weak gap a PGR is reported on. `auto`: `MIN_GAP_SE` standard errors
    of a test accuracy at the midpoint of weak and ceiling, on n_test rows; a number: that gap."""
    if setting != "auto":
        return float(setting)
    return MIN_GAP_SE * accuracy_se((weak + ceiling) / 2, n_test)


def gated_pgr(weak: float | None, strong: float | None, ceiling: float | None, floor: float) -> float | None:
    """PGR, or None when any input is missing or ceiling − weak is below `floor` (or not positive)."""
    if weak is None or strong is None or ceiling is None:
        return None
    gap = ceiling - weak
    if gap <= 0 or gap < floor:
        return None
    return (strong - weak) / gap


def ratio_interval(num: np.ndarray, den: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Fieller's interval for mean(num) / mean(den) from paired observations on the last axis
    (vectorised over any leading axes): every θ for which the t-test of mean(num − θ den) = 0
    does not reject at `1 - level`.

    It is the set where (a − θ b)² <= q (s_aa − 2θ s_ab + θ² s_bb) / k (a, b the means, s the
    sample covariances, q the squared t quantile on k − 1 degrees of freedom): a quadratic in θ.
    Bounded exactly when b² > q s_bb / k, i.e. when the same t-test finds mean(den) != 0; else
    (and with fewer than 2 observations) both bounds are NaN: the denominator is not resolved and
    the ratio has no finite interval."""
    from scipy import stats

    a_obs, b_obs = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    k = a_obs.shape[-1]
    if k < 2:
        nan = np.full(a_obs.shape[:-1], np.nan)
        return nan, nan.copy()
    a, b = a_obs.mean(axis=-1), b_obs.mean(axis=-1)
    da, db = a_obs - a[..., None], b_obs - b[..., None]
    s_aa, s_bb, s_ab = ((x * y).sum(axis=-1) / (k - 1) for x, y in ((da, da), (db, db), (da, db)))
    v = float(stats.t.ppf(0.5 + level / 2, k - 1)) ** 2 / k
    quad, half_lin, const = b * b - v * s_bb, a * b - v * s_ab, a * a - v * s_aa
    bounded = quad > 0
    # the point estimate a / b always satisfies the inequality, so the discriminant is >= 0 when
    # bounded; the clip only absorbs rounding
    root = np.sqrt(np.clip(half_lin * half_lin - quad * const, 0.0, None))
    safe = np.where(bounded, quad, 1.0)
    lo = np.where(bounded, (half_lin - root) / safe, np.nan)
    hi = np.where(bounded, (half_lin + root) / safe, np.nan)
    return lo, hi


def pgr_interval(
    weak: Sequence[float], strong: Sequence[float], ceiling: Sequence[float], level: float = 0.95
) -> tuple[float, float] | None:
    """The Fieller interval of the seed-averaged PGR, (mean student − mean weak) / (mean ceiling −
    mean weak), from one (weak, student, ceiling) score per seed, the three of a seed measured on
    the same test rows. None with fewer than 2 seeds, or when the seeds do not resolve the gap
    (its paired t-interval includes zero): the ratio then has no bounded interval."""
    w, s, c = (np.asarray(x, dtype=float) for x in (weak, strong, ceiling))
    if not (len(w) == len(s) == len(c)):
        raise ValueError("one weak, student and ceiling score per seed")
    lo, hi = ratio_interval(s - w, c - w, level)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return float(lo), float(hi)


# (PGR name, metric suffix, test-row count key) of each PGR variant a run reports
PGR_VARIANTS = (
    ("pgr", "acc", "n_test"),
    ("pgr_auroc", "auroc", "n_test"),
    ("pgr_ood", "acc_ood", "n_test_ood"),
    ("pgr_auroc_ood", "auroc_ood", "n_test_ood"),
)


def gate_pgrs(metrics: dict[str, float | None], setting: float | str = "auto") -> dict[str, float | None]:
    """`metrics` with every PGR variant set to None where its gap is below the minimum (see
    `min_gap`), and the accuracy gaps and their minimums recorded: `gap`, `min_gap` (and `_ood`)."""
    out = dict(metrics)
    for name, suffix, n_key in PGR_VARIANTS:
        weak, ceiling, n = metrics.get(f"weak_{suffix}"), metrics.get(f"ceiling_{suffix}"), metrics.get(n_key)
        if weak is None or ceiling is None or n is None or name not in metrics:
            continue
        floor = min_gap(weak, ceiling, int(n), setting)
        out[name] = gated_pgr(weak, metrics.get(f"w2s_{suffix}"), ceiling, floor)
        if suffix.startswith("acc"):
            tail = suffix.removeprefix("acc")
            out[f"gap{tail}"], out[f"min_gap{tail}"] = ceiling - weak, floor
    return out


def clustered_slope(
    x: Sequence[float],
    y: Sequence[float],
    clusters: Sequence[Any],
    level: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, float | None]:
    """OLS slope and intercept of y on x, with a percentile CI of the slope from a bootstrap that
    resamples whole clusters (seeds: runs of one seed share splits and weak model, so they are
    not independent points). Bounds are None with fewer than 3 clusters."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) < 3 or np.ptp(xs) == 0:
        return {"slope": None, "intercept": None, "slope_lo": None, "slope_hi": None, "n": len(xs)}
    slope, intercept = np.polyfit(xs, ys, 1)
    out: dict[str, float | None] = {"slope": float(slope), "intercept": float(intercept), "n": float(len(xs))}
    labels = np.asarray([str(c) for c in clusters])
    ids = np.unique(labels)
    out["slope_lo"] = out["slope_hi"] = None
    if len(ids) >= 3:
        rng = np.random.default_rng(seed)
        members = [np.flatnonzero(labels == c) for c in ids]
        slopes = []
        for _ in range(reps):
            idx = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
            if np.ptp(xs[idx]) > 0:
                slopes.append(np.polyfit(xs[idx], ys[idx], 1)[0])
        tail = (1 - level) / 2
        out["slope_lo"], out["slope_hi"] = (float(v) for v in np.quantile(slopes, [tail, 1 - tail]))
    return out

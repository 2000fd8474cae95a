"""Statistics for claims about weak-to-strong results: paired differences over seeds with a
t-interval, a minimum resolvable gap for PGR, and a two-stage bootstrap CI for PGR.

Why paired: every configuration of a sweep runs on the same seeds, and a seed fixes the splits
and the weak model, so most of the seed-to-seed spread is shared by two methods. The difference
per seed removes it; an unpaired `mean ± se` of each method keeps it, and a real difference
drowns in the spread the two methods share.

Why a minimum gap: PGR divides by ceiling − weak. When that gap is within what the test set can
resolve, the ratio is noise (a 1-point gap turns a 1-point student difference into PGR ±1), so it
is not reported at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CLAIM_SEEDS = 5  # fewer seeds than this support no claim, whatever the interval says
MIN_GAP_SE = 3.0  # `eval.min_gap: auto`: this many standard errors of a test accuracy


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval (bounds None when n < 2)."""

    mean: float
    lo: float | None
    hi: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.lo is not None and self.hi is not None and (self.lo > 0 or self.hi < 0)

    @property
    def supports_claim(self) -> bool:
        """Excludes zero on at least `CLAIM_SEEDS` paired seeds."""
        return self.excludes_zero and self.n >= CLAIM_SEEDS


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """Mean and Student-t interval of `values` (e.g. per-seed paired differences); None if empty."""
    from scipy import stats

    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(xs) == 0:
        return None
    mean = float(xs.mean())
    if len(xs) < 2:
        return Interval(mean, None, None, 1)
    half = float(stats.t.ppf(0.5 + level / 2, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs)))
    return Interval(mean, mean - half, mean + half, len(xs))


def paired_differences(
    values: dict[int, float | None], baseline: dict[int, float | None], level: float = 0.95
) -> Interval | None:
    """`values - baseline` paired by seed (only seeds both have), with a t-interval."""
    seeds = sorted(s for s in values.keys() & baseline.keys() if values[s] is not None and baseline[s] is not None)
    return t_interval([float(values[s]) - float(baseline[s]) for s in seeds], level)  # type: ignore[arg-type]


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


def bootstrap_pgr(
    weak: Sequence[np.ndarray],
    strong: Sequence[np.ndarray],
    ceiling: Sequence[np.ndarray],
    level: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile CI of the seed-averaged PGR by a two-stage bootstrap.

    Inputs: per seed, the 0/1 correctness of each model on that seed's test rows (the three
    arrays of one seed aligned by row). Each replicate draws seeds with replacement, then, for
    each drawn seed, test rows with replacement, the same rows for all three models (paired), and
    computes PGR from the accuracies averaged over the drawn seeds. Both sources of error a
    result carries, which seed and which test rows, are in the interval.

    None when more than the interval's tail mass of replicates has ceiling <= weak: the gap is
    then not resolved and no interval on the ratio is meaningful.
    """
    k = len(weak)
    if k == 0 or not (len(strong) == len(ceiling) == k):
        raise ValueError("one correctness array per seed and model")
    rng = np.random.default_rng(seed)
    # per seed, `reps` resampled accuracies of the three models, paired by row
    per_seed = []
    for w, s, c in zip(weak, strong, ceiling, strict=True):
        n = len(w)
        if not (len(s) == len(c) == n) or n == 0:
            raise ValueError("the three models' correctness arrays of a seed must be aligned and non-empty")
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=reps)
        stacked = np.stack([w, s, c], axis=1).astype(float)  # n x 3
        per_seed.append(counts @ stacked / n)  # reps x 3
    means = np.stack(per_seed)  # k x reps x 3
    # stage one: which seeds; stage two: an independent row resample for each drawn slot
    drawn_seed = rng.integers(0, k, size=(reps, k))
    drawn_rows = rng.integers(0, reps, size=(reps, k))
    acc = means[drawn_seed, drawn_rows].mean(axis=1)  # reps x 3
    gap = acc[:, 2] - acc[:, 0]
    tail = (1 - level) / 2
    if np.mean(gap <= 0) >= tail:
        return None
    ratios = np.where(gap > 0, (acc[:, 1] - acc[:, 0]) / np.where(gap > 0, gap, 1.0), -np.inf)
    lo, hi = np.quantile(ratios, [tail, 1 - tail])
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

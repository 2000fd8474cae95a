"""Aggregate per-seed results: mean ± standard error, PGR against seed-averaged baselines with
its Fieller interval over seeds, and each configuration's paired difference to a baseline
configuration, Holm-adjusted across the table's comparisons.

Averaging per-seed PGRs is unstable (a seed whose ceiling barely beats its weak model explodes
the ratio); the protocol computes PGR from the seed-averaged weak, student and ceiling numbers,
reports it only when the gap is at least the seeds' mean `min_gap` (`eval.min_gap`), and gives
the Fieller interval of that ratio over the seeds (`w2s.core.stats.pgr_interval`).

Comparisons are paired: a configuration's difference to the baseline configuration (the sweep's
`baseline`, naive by default) is taken seed by seed, on the seeds both ran, with a t-interval and
the t-test's p-value. The p-values of every comparison in one table are one family: Holm adjusts
them together, and a claim needs the adjusted p-value below 0.05 on at least 5 seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from w2s.core.metric_schema import aggregated_names
from w2s.core.metrics import pgr
from w2s.core.stats import Interval, clustered_slope, gated_pgr, holm, is_claim, paired_differences, pgr_interval
from w2s.methods import all_metrics

SEED_KEY = "seed"
POINT_KEY = "point"  # a sweep row's point index, naming its per-row test correctness table
# metrics every configuration is compared on, paired by seed, against the baseline configuration
COMPARED = ("w2s_acc", "w2s_acc_ood")
# differences inside each configuration, paired by seed (name: minuend, subtrahend): whether the
# testbed's gap is resolved, and whether weak supervision beat spending the weak budget's labels
# on the strong model directly
WITHIN = {
    "gap": ("ceiling_acc", "weak_acc"),
    "gap_ood": ("ceiling_acc_ood", "weak_acc_ood"),
    "over_budget": ("w2s_acc", "strong_budget_acc"),
    "over_budget_ood": ("w2s_acc_ood", "strong_budget_acc_ood"),
}
# PGR variants computed from seed-averaged baselines: (name, metric suffix).
PGRS = (("pgr", "acc"), ("pgr_auroc", "auroc"), ("pgr_ood", "acc_ood"), ("pgr_auroc_ood", "auroc_ood"))


def mean_se(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, standard error of the mean (sample sd / sqrt(n)) and n over the defined values."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs)), len(xs)


def _pgr_ci(members: Sequence[dict[str, Any]], suffix: str) -> tuple[float, float] | None:
    """The Fieller interval of a group's seed-averaged PGR on the seeds that have all three
    scores (`w2s.core.stats.pgr_interval`)."""
    keys = (f"weak_{suffix}", f"w2s_{suffix}", f"ceiling_{suffix}")
    scored = [m for m in members if all(m.get(k) is not None for k in keys)]
    if len(scored) < 2:
        return None
    weak, w2s, ceiling = ([float(m[k]) for m in scored] for k in keys)
    return pgr_interval(weak, w2s, ceiling)


def holm_family(rows: Sequence[dict[str, Any]], prefixes: Sequence[str]) -> tuple[list[dict[str, float | None]], int]:
    """Holm-adjusted p-values of every `<prefix>_p` in `rows` taken as one family (the comparisons
    of one table): per row, prefix -> adjusted p (None where there is no test), and the family's
    size. A comparison that repeats in several rows (the same difference, to the bit: e.g. the
    ceiling − weak gap that configurations sharing a seed's weak model and ceiling all show) is
    one test and counts once."""
    cells = [(i, prefix) for i, r in enumerate(rows) for prefix in prefixes if r.get(f"{prefix}_p") is not None]

    def test_of(i: int, prefix: str) -> tuple:
        return tuple(rows[i].get(f"{prefix}_{k}") for k in ("mean", "lo", "hi", "n", "p"))

    tests = list(dict.fromkeys(test_of(i, prefix) for i, prefix in cells))
    adjusted = dict(zip(tests, holm([t[-1] for t in tests]), strict=True))
    out: list[dict[str, float | None]] = [dict.fromkeys(prefixes) for _ in rows]
    for i, prefix in cells:
        out[i][prefix] = adjusted[test_of(i, prefix)]
    return out, len(tests)


def aggregate_seeds(
    rows: Sequence[dict[str, Any]],
    group_keys: Sequence[str],
    baseline: dict[str, Any] | None = None,
    compare: Sequence[str] = COMPARED,
) -> list[dict[str, Any]]:
    """One row per group (all `group_keys` equal, any seed) with `<metric>_mean/_se`, `seeds`,
    `pgr` / `pgr_auroc` (and `_ood`) from the seed-averaged metrics (None under the seeds' mean
    `min_gap`, with `pgr_status` saying why), the per-seed PGR spread, and:

    - `pgr_lo` / `pgr_hi` (and each variant's): its 95% Fieller interval over the seeds, None when
      the seeds do not resolve the gap;
    - `diff_<metric>_mean/_lo/_hi/_n/_p` for each metric of `compare`: the paired difference to
      the group that equals this one except for `baseline`'s keys, which take its values
      (t-interval and two-sided t-test over the seeds both ran), `_p_holm` Holm-adjusted over
      every such comparison of the sweep (`_family`: how many), `_claim` that adjusted p < 0.05 on
      at least 5 seeds;
    - `within_<name>_mean/_lo/_hi/_n/_p/_p_holm` for each difference of `WITHIN`, taken seed by
      seed inside the group (absent metrics give n = 0), Holm over every within-difference.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_keys), []).append(row)
    baseline = {k: v for k, v in (baseline or {}).items() if k in group_keys}
    compare = [m for m in compare if any(r.get(m) is not None for r in rows)]
    out = []
    for key, members in groups.items():
        agg: dict[str, Any] = dict(zip(group_keys, key, strict=True))
        agg["seeds"] = sorted(m.get(SEED_KEY) for m in members)
        for name in aggregated_names(all_metrics()):  # every declared metric marked so (and its OOD twin)
            mean, se, _ = mean_se(m.get(name) for m in members)
            agg[f"{name}_mean"], agg[f"{name}_se"] = mean, se
        _add_pgrs(agg, members)
        for name, (minuend, subtrahend) in WITHIN.items():
            within = paired_differences(_by_seed(members, minuend), _by_seed(members, subtrahend))
            agg.update(_interval(f"within_{name}", within))
        if baseline and any(agg[k] != v for k, v in baseline.items()):
            base = groups.get(tuple(baseline.get(k, agg[k]) for k in group_keys))
            for metric in compare:
                diff = None
                if base is not None:
                    diff = paired_differences(_by_seed(members, metric), _by_seed(base, metric))
                agg.update(_interval(f"diff_{metric}", diff))
        out.append(agg)
    _adjust(out, [f"diff_{m}" for m in compare], claims=True)
    _adjust(out, [f"within_{name}" for name in WITHIN], claims=False)
    return out


def _add_pgrs(agg: dict[str, Any], members: Sequence[dict[str, Any]]) -> None:
    """Each PGR variant of a group from its seed-averaged scores, gated by the mean `min_gap`,
    with its Fieller interval and the spread of the per-seed ratios."""
    for name, suffix in PGRS:
        floor = agg.get(f"min_gap{suffix.removeprefix('acc').removeprefix('auroc')}_mean") or 0.0
        weak, ceiling = agg[f"weak_{suffix}_mean"], agg[f"ceiling_{suffix}_mean"]
        agg[name] = gated_pgr(weak, agg[f"w2s_{suffix}_mean"], ceiling, floor)
        if weak is not None and ceiling is not None:
            agg[f"{name}_status"] = "ok" if agg[name] is not None else "gap too small"
        ci = _pgr_ci(members, suffix) if agg[name] is not None else None
        agg[f"{name}_lo"], agg[f"{name}_hi"] = ci if ci is not None else (None, None)
        per_seed = [pgr(m.get(f"weak_{suffix}"), m.get(f"w2s_{suffix}"), m.get(f"ceiling_{suffix}")) for m in members]
        _, agg[f"{name}_seed_se"], agg[f"{name}_defined_seeds"] = mean_se(per_seed)


def _adjust(table: list[dict[str, Any]], prefixes: Sequence[str], claims: bool) -> None:
    """Holm-adjust the comparisons under `prefixes` over the whole table, in place: `_p_holm`,
    `_family` and (for comparisons with a baseline) `_claim`."""
    adjusted, family = holm_family(table, prefixes)
    for row, ps in zip(table, adjusted, strict=True):
        for prefix in prefixes:
            if f"{prefix}_n" not in row:
                continue  # the baseline is not compared with itself
            row[f"{prefix}_p_holm"], row[f"{prefix}_family"] = ps[prefix], family
            if claims:
                row[f"{prefix}_claim"] = is_claim(ps[prefix], row[f"{prefix}_n"])


def _by_seed(members: list[dict[str, Any]], metric: str) -> dict[int, Any]:
    """One metric of a configuration's rows, by seed (what `paired_differences` pairs on)."""
    return {int(m[SEED_KEY]): m.get(metric) for m in members}


def _interval(prefix: str, diff: Interval | None) -> dict[str, Any]:
    """`<prefix>_mean/_lo/_hi/_n/_p` of a paired difference: None and n = 0 where there is none."""
    return {
        f"{prefix}_mean": diff.mean if diff else None,
        f"{prefix}_lo": diff.lo if diff else None,
        f"{prefix}_hi": diff.hi if diff else None,
        f"{prefix}_n": diff.n if diff else 0,
        f"{prefix}_p": diff.p if diff else None,
    }


# The misfit-gain pairs a sweep's runs can relate, with how a report names the gain and the bound:
# squared misfit with the Brier-score gain (the pair Charikar et al.'s bound is about), and the KL
# misfit with the log-loss gain.
MISFIT_PAIRS = (
    ("misfit", "actual_gain", "actual gain", "Charikar et al.'s bound"),
    ("misfit_kl", "actual_gain_kl", "actual_gain_kl", "the bound's form"),
)


def misfit_fit(
    rows: Sequence[dict[str, Any]], misfit: str, gain: str
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The runs that have both `misfit` and `gain`, and the fit of gain on misfit over them (OLS,
    its slope's CI by resampling seeds) with `bound_holds` (runs where gain >= misfit) and `runs`;
    None with fewer than 3 such runs."""
    runs = [r for r in rows if r.get(misfit) is not None and r.get(gain) is not None]
    if len(runs) < 3:
        return None
    fit = clustered_slope([r[misfit] for r in runs], [r[gain] for r in runs], [r["seed"] for r in runs])
    return runs, {**fit, "bound_holds": sum(r[gain] >= r[misfit] for r in runs), "runs": len(runs)}

"""Aggregate per-seed results: mean ± standard error, and PGR against seed-averaged baselines.

Averaging per-seed PGRs is unstable (a seed whose ceiling barely beats its weak model explodes
the ratio); the protocol computes PGR from the seed-averaged weak, student and ceiling numbers
and reports the spread of the per-seed PGRs next to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from w2s.core.metrics import pgr

SEED_KEY = "seed"
AGGREGATED = (
    "weak_acc",
    "ceiling_acc",
    "w2s_acc",
    "strong_budget_acc",
    "strong_budget_auroc",
    "weak_auroc",
    "ceiling_auroc",
    "w2s_auroc",
    "agreement",
    "agreement_weak_correct",
    "agreement_weak_wrong",
    "misfit",
    "predicted_gain",
    "actual_gain",
    "ece",
    # label-refining methods and distribution shift (absent keys aggregate to None)
    "refined_acc",
    "weak_transfer_acc",
    "labels_transfer_acc",
    "self_label_frac",
    "flip_rate",
    "weak_acc_ood",
    "ceiling_acc_ood",
    "w2s_acc_ood",
    "refined_acc_ood",
    "weak_auroc_ood",
    "ceiling_auroc_ood",
    "w2s_auroc_ood",
)
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


def aggregate_seeds(rows: Sequence[dict[str, Any]], group_keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per group (all `group_keys` equal, any seed) with `<metric>_mean/_se`, `seeds`,
    `pgr` / `pgr_auroc` from the seed-averaged metrics and the per-seed PGR spread."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_keys), []).append(row)
    out = []
    for key, members in groups.items():
        agg: dict[str, Any] = dict(zip(group_keys, key, strict=True))
        agg["seeds"] = sorted(m.get(SEED_KEY) for m in members)
        for name in AGGREGATED:
            mean, se, _ = mean_se(m.get(name) for m in members)
            agg[f"{name}_mean"], agg[f"{name}_se"] = mean, se
        for name, suffix in PGRS:
            agg[name] = pgr(agg[f"weak_{suffix}_mean"], agg[f"w2s_{suffix}_mean"], agg[f"ceiling_{suffix}_mean"])
            per_seed = [
                pgr(m.get(f"weak_{suffix}"), m.get(f"w2s_{suffix}"), m.get(f"ceiling_{suffix}")) for m in members
            ]
            _, agg[f"{name}_seed_se"], agg[f"{name}_defined_seeds"] = mean_se(per_seed)
        out.append(agg)
    return out

"""One tuning rule for the W2S student and the strong-on-budget baseline alike.

The question it serves: should a user spend the weak budget's labels on the strong model directly,
or through weak-to-strong training? The comparison is fair only when both get the same tuning.
The rule here reads a finished tuning sweep (`points.json`, one row per grid point and seed),
whose grid varies the training settings both share (epochs and lr; on frozen features
`strong.frozen.epochs` / `strong.frozen.lr`), and picks for each, **from the same grid**, the
point with the highest mean **ground-truth val** accuracy over the tuning seeds:
`w2s_val_acc` for the student, `strong_budget_val_acc` for the budget baseline.

This is an oracle tuning: val ground truth is a label set neither the student (which sees weak
val labels) nor the budget baseline (which sees only weak_train) has. It is applied equally to
both, and it never reads a test row; the confirmation sweep then runs the two picks on fresh
seeds. The student's pick goes into `strong.*`, the budget's into `strong.budget.*`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RULE = (
    "from one grid, the point with the highest mean ground-truth val accuracy over the tuning seeds "
    "(oracle tuning: it reads val ground truth, applied alike to the student and the budget baseline; "
    "ties go to the earlier grid point)"
)
# means equal to this many decimals are a tie (far finer than one answer in any val split)
TIE_DIGITS = 9
# what each model is tuned on
TUNED_METRIC = {"w2s": "w2s_val_acc", "budget": "strong_budget_val_acc"}
# a grid axis ending in one of these is that training setting; the budget's override of it
BUDGET_FIELD = {"epochs": "strong.budget.epochs", "lr": "strong.budget.lr"}


@dataclass(frozen=True)
class Pick:
    """The grid point a rule chose for one model: its axis values, mean score and seeds."""

    values: dict[str, Any]
    score: float
    seeds: int


def tuning_axes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The grid axes that set epochs or lr (keys like `strong.lr`, `strong.frozen.epochs`)."""
    keys = dict.fromkeys(k for r in rows for k in r)
    return [k for k in keys if k.startswith("strong.") and k.rsplit(".", 1)[-1] in BUDGET_FIELD]


def pick(rows: Sequence[dict[str, Any]], axes: Sequence[str], metric: str) -> Pick:
    """The combination of `axes` values with the highest mean `metric` over its seeds; every
    combination must have run on the same seeds (a pick across unequal seed sets would compare
    different splits)."""
    if not axes:
        raise ValueError("no tuning axes: the grid must vary epochs or lr (strong.epochs, strong.frozen.lr, ...)")
    scores: dict[tuple, dict[int, float]] = defaultdict(dict)
    for row in rows:
        value = row.get(metric)
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"point seed={row.get('seed')} {[row.get(a) for a in axes]} has no {metric}")
        combo, seed = tuple(row[a] for a in axes), int(row["seed"])
        if seed in scores[combo]:
            raise ValueError(
                f"{dict(zip(axes, combo, strict=True))} seed {seed} appears twice: tune one variant at a time"
            )
        scores[combo][seed] = float(value)
    seed_sets = {tuple(sorted(s)) for s in scores.values()}
    if len(seed_sets) != 1:
        raise ValueError(f"the grid points ran on different seeds: {sorted(seed_sets)}")
    means = {combo: sum(s.values()) / len(s) for combo, s in scores.items()}
    # max keeps the first of equal means; rounded, because equal counts of right answers summed
    # in another order can differ in the last bit, and that noise must not break a tie
    best = max(means, key=lambda c: round(means[c], TIE_DIGITS))
    return Pick(dict(zip(axes, best, strict=True)), means[best], len(scores[best]))


def tuned_overrides(rows: Sequence[dict[str, Any]], axes: Sequence[str] | None = None) -> dict[str, Any]:
    """The student's pick as `strong.*` overrides and the budget's as `strong.budget.*`, plus a
    record of the rule and the scores that chose them."""
    axes = list(axes) if axes is not None else tuning_axes(rows)
    student, budget = (pick(rows, axes, TUNED_METRIC[m]) for m in ("w2s", "budget"))
    overrides = dict(student.values)
    overrides.update({BUDGET_FIELD[a.rsplit(".", 1)[-1]]: v for a, v in budget.values.items()})
    return {
        "overrides": overrides,
        "rule": RULE,
        "student": {"metric": TUNED_METRIC["w2s"], "score": student.score, "seeds": student.seeds},
        "budget": {"metric": TUNED_METRIC["budget"], "score": budget.score, "seeds": budget.seeds},
    }

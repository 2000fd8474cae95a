"""Result tables as markdown (for Prefect artifacts, results documents and the terminal)."""

from __future__ import annotations

from typing import Any

from w2s.analysis.aggregate import holm_family
from w2s.core.stats import CLAIM_ALPHA, CLAIM_SEEDS, is_claim


def md_table(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(cells) + " |" for cells in rows)])


def fmt_mean_se(mean: float | None, se: float | None, digits: int = 3) -> str:
    """`0.873 ± 0.004`, `0.873` without an error, `n/a` when undefined."""
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def fmt_pgr(r: dict[str, Any], name: str = "pgr") -> str:
    """PGR with its 95% interval over seeds; `[unbounded]` when two or more seeds do not resolve the
    gap (no finite interval), the value alone on one seed; `gap too small` where ceiling - weak is
    under the minimum gap."""
    if r.get(name) is None:
        return "gap too small" if r.get(f"{name}_status") == "gap too small" else "n/a"
    lo, hi = r.get(f"{name}_lo"), r.get(f"{name}_hi")
    if lo is not None and hi is not None:
        return f"{r[name]:.2f} [{lo:.2f}, {hi:.2f}]"
    if len(r.get("seeds") or []) >= 2:
        return f"{r[name]:.2f} [unbounded]"
    return f"{r[name]:.2f}"


def fmt_interval(mean: float | None, lo: float | None, hi: float | None, digits: int = 3) -> str:
    """`+0.012 [+0.004, +0.020]`, signed; the mean alone without bounds; `n/a` when undefined."""
    if mean is None:
        return "n/a"
    if lo is None or hi is None:
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def fmt_p(p: float | None) -> str:
    """A p-value to two significant digits (`0.021`, `0.0015`, `1`); `< 0.0001` below that;
    `n/a` when there is no test (fewer than 2 seeds)."""
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def differences_table(
    rows: list[dict[str, Any]], group_keys: list[str], baseline: dict[str, Any], metrics: list[str] | None = None
) -> str:
    """Each configuration's paired difference to the baseline (same seeds and splits), with its
    95% t-interval, the two-sided paired t-test's p-value, and that p-value Holm-adjusted over
    every comparison in this table (all its rows and metric columns: the count is in the
    header). `yes` in the claim column needs the adjusted p below 0.05 on >= 5 seeds.
    `metrics`: the compared metrics to show (default: every one the rows hold)."""
    against = ", ".join(f"{k}={v}" for k, v in baseline.items())
    found = sorted({k[5:-5] for r in rows for k in r if k.startswith("diff_") and k.endswith("_mean")})
    metrics = found if metrics is None else [m for m in metrics if m in found]
    compared = [r for r in rows if metrics and f"diff_{metrics[0]}_n" in r]  # not the baseline itself
    adjusted, family = holm_family(compared, [f"diff_{m}" for m in metrics])
    head = [*group_keys]
    for m in metrics:
        head += [f"{m} − baseline [95% CI]", "paired seeds", "p", f"p, Holm ({family})"]
        head.append(f"claim (≥ {CLAIM_SEEDS} seeds)")
    body = []
    for r, ps in zip(compared, adjusted, strict=True):
        cells = [str(r[k]) for k in group_keys]
        for m in metrics:
            n, p_holm = r[f"diff_{m}_n"], ps[f"diff_{m}"]
            cells += [
                fmt_interval(r[f"diff_{m}_mean"], r[f"diff_{m}_lo"], r[f"diff_{m}_hi"]),
                str(n),
                fmt_p(r.get(f"diff_{m}_p")),
                fmt_p(p_holm),
                "yes" if is_claim(p_holm, n) else "no",
            ]
        body.append(cells)
    intro = (
        f"Paired differences to {against}: 95% t-interval over the paired seeds; p: two-sided paired "
        f"t-test; Holm-adjusted over the {_count(family, 'comparison')} of this table; a claim needs the "
        f"adjusted p < {CLAIM_ALPHA:g} on ≥ {CLAIM_SEEDS} seeds."
    )
    return intro + "\n\n" + md_table(head, body)


WITHIN_HEADS = {
    "gap": "ceiling − weak",
    "gap_ood": "ceiling − weak (OOD)",
    "over_budget": "w2s − strong on weak budget",
    "over_budget_ood": "w2s − strong on weak budget (OOD)",
}


def within_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """Per configuration, differences paired by seed inside it (95% t-interval, then the paired
    t-test's p and, in brackets, that p Holm-adjusted over every difference in this table): the
    gap the testbed resolves, and the student against the strong model trained on the weak
    budget."""
    names = [n for n in WITHIN_HEADS if any(r.get(f"within_{n}_n") for r in rows)]
    adjusted, family = holm_family(rows, [f"within_{n}" for n in names])
    head = [*group_keys]
    for n in names:
        head += [f"{WITHIN_HEADS[n]} [95% CI]", f"p (Holm, {family})"]
    body = []
    for r, ps in zip(rows, adjusted, strict=True):
        cells = [str(r[k]) for k in group_keys]
        for n in names:
            cells += [
                fmt_interval(r[f"within_{n}_mean"], r[f"within_{n}_lo"], r[f"within_{n}_hi"]),
                f"{fmt_p(r.get(f'within_{n}_p'))} ({fmt_p(ps[f'within_{n}'])})",
            ]
        body.append([*cells, str(max(r[f"within_{n}_n"] for n in names))])
    intro = (
        "Inside each configuration, paired by seed: 95% t-interval; p: two-sided paired t-test, in "
        f"brackets Holm-adjusted over the {_count(family, 'distinct difference')} of this table."
    )
    return intro + "\n\n" + md_table([*head, "seeds"], body)


def markdown_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """One line per configuration: accuracies (mean ± s.e.), PGR (with its bootstrap CI, or `gap
    too small`), the student's gain over the labels it trained on, and agreement."""
    head = [
        *group_keys,
        "seeds",
        "weak acc",
        "strong on weak budget acc",
        "ceiling acc",
        "w2s acc",
        "PGR [95% CI]",
        "PGR (AUROC)",
        "gain over its labels",
        "agreement on weak-wrong",
    ]
    body = []
    for r in rows:
        cells = [str(r[k]) for k in group_keys] + [
            str(len(r["seeds"])),
            fmt_mean_se(r["weak_acc_mean"], r["weak_acc_se"]),
            fmt_mean_se(r.get("strong_budget_acc_mean"), r.get("strong_budget_acc_se")),
            fmt_mean_se(r["ceiling_acc_mean"], r["ceiling_acc_se"]),
            fmt_mean_se(r["w2s_acc_mean"], r["w2s_acc_se"]),
            fmt_pgr(r),
            fmt_pgr(r, "pgr_auroc"),
            fmt_mean_se(r.get("gain_over_labels_mean"), r.get("gain_over_labels_se")),
            fmt_mean_se(r["agreement_weak_wrong_mean"], r["agreement_weak_wrong_se"]),
        ]
        body.append(cells)
    return md_table(head, body)


def methods_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """Label quality next to student quality, and out-of-distribution numbers when present:
    what each method did to the labels, and whether the student gained from it."""
    ood = any(r.get("w2s_acc_ood_mean") is not None for r in rows)
    head = [*group_keys, "transfer label acc", "supervisor test acc", "w2s acc", "PGR", "self-label frac", "flip rate"]
    if ood:
        head += ["weak acc (OOD)", "ceiling acc (OOD)", "w2s acc (OOD)", "PGR (OOD)"]
    body = []
    for r in rows:
        supervisor = "refined_acc" if r.get("refined_acc_mean") is not None else "weak_acc"
        cells = [str(r[k]) for k in group_keys] + [
            fmt_mean_se(r["labels_transfer_acc_mean"], r["labels_transfer_acc_se"]),
            fmt_mean_se(r[f"{supervisor}_mean"], r[f"{supervisor}_se"]),
            fmt_mean_se(r["w2s_acc_mean"], r["w2s_acc_se"]),
            fmt_pgr(r),
            fmt_mean_se(r["self_label_frac_mean"], r["self_label_frac_se"], 2),
            fmt_mean_se(r["flip_rate_mean"], r["flip_rate_se"]),
        ]
        if ood:
            cells += [
                fmt_mean_se(r[f"{k}_mean"], r[f"{k}_se"]) for k in ("weak_acc_ood", "ceiling_acc_ood", "w2s_acc_ood")
            ]
            cells.append(fmt_pgr(r, "pgr_ood"))
        body.append(cells)
    return md_table(head, body)


def misfit_line(fit: dict[str, Any], misfit: str, gain: str, bound: str) -> str:
    """One sentence on the misfit-vs-gain relation across a sweep's runs, from
    `w2s.analysis.aggregate.misfit_fit`; `misfit`, `gain` and `bound` name the pair as
    `w2s.analysis.aggregate.MISFIT_PAIRS` does."""
    name = misfit[0].upper() + misfit[1:]
    held, runs = fit["bound_holds"], fit["runs"]
    if fit.get("slope") is None:
        return f"{name} vs gain: no fit ({runs} runs, {misfit} constant)."
    ci = ""
    if fit.get("slope_lo") is not None and fit.get("slope_hi") is not None:
        ci = f" [95% CI {fit['slope_lo']:.2f}, {fit['slope_hi']:.2f}, runs resampled by seed]"
    return (
        f"{name} vs gain over {runs} runs: {gain} = {fit['intercept']:+.3f} + {fit['slope']:.2f}{ci} x {misfit}; "
        f"gain >= {misfit} ({bound}) on {held} of {runs} runs."
    )


def dynamics_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """The student's training curve on ground-truth val (diagnostics, read after training):
    accuracy at the checkpoint weak-val early stopping keeps, at the peak, at the last step, and
    the decline from the peak to the end."""
    head = [
        *group_keys,
        "student steps",
        "val acc, weak-val pick",
        "val acc, peak (hindsight)",
        "val acc, last step",
        "decline peak → last",
        "peak epoch",
    ]
    body = []
    for r in rows:
        cells = [str(r[k]) for k in group_keys] + [
            fmt_mean_se(r.get("student_steps_mean"), None, 0),
            *(
                fmt_mean_se(r.get(f"{m}_mean"), r.get(f"{m}_se"))
                for m in ("val_acc_weak_pick", "val_acc_peak", "val_acc_last", "val_acc_decline")
            ),
            fmt_mean_se(r.get("peak_epoch_mean"), r.get("peak_epoch_se"), 2),
        ]
        body.append(cells)
    return md_table(head, body)


def selection_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """Weak-model selection: the chosen candidate's probe student against the best candidate's
    in hindsight, and the regret between them."""
    head = [*group_keys, "seeds", "chosen probe acc", "best probe acc (hindsight)", "regret"]
    body = []
    for r in rows:
        cells = [str(r[k]) for k in group_keys] + [
            str(len(r["seeds"])),
            *(
                fmt_mean_se(r.get(f"{m}_mean"), r.get(f"{m}_se"))
                for m in ("selection_chosen_acc", "selection_best_acc", "selection_regret")
            ),
        ]
        body.append(cells)
    return md_table(head, body)

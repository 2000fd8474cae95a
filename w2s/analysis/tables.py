"""Result tables as markdown (for Prefect artifacts, results documents and the terminal)."""

from __future__ import annotations

from typing import Any

from w2s.core.stats import Interval


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
    """PGR with its bootstrap CI when there is one, else ± the per-seed spread; `gap too small`
    where ceiling - weak is under the minimum gap."""
    if r.get(name) is None:
        return "gap too small" if r.get(f"{name}_status") == "gap too small" else "n/a"
    lo, hi = r.get(f"{name}_lo"), r.get(f"{name}_hi")
    if lo is not None and hi is not None:
        return f"{r[name]:.2f} [{lo:.2f}, {hi:.2f}]"
    return fmt_mean_se(r[name], r.get(f"{name}_seed_se"), 2)


def fmt_interval(mean: float | None, lo: float | None, hi: float | None, digits: int = 3) -> str:
    """`+0.012 [+0.004, +0.020]`, signed; the mean alone without bounds; `n/a` when undefined."""
    if mean is None:
        return "n/a"
    if lo is None or hi is None:
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def differences_table(rows: list[dict[str, Any]], group_keys: list[str], baseline: dict[str, Any]) -> str:
    """Each configuration's paired difference to the baseline (same seeds and splits), with its
    95% t-interval; `yes` in the claim column needs the interval to exclude zero on >= 5 seeds."""
    against = ", ".join(f"{k}={v}" for k, v in baseline.items())
    metrics = sorted({k[5:-5] for r in rows for k in r if k.startswith("diff_") and k.endswith("_mean")})
    head = [*group_keys]
    for m in metrics:
        head += [f"{m} − baseline [95% CI]", "paired seeds", "excludes 0", "claim (≥ 5 seeds)"]
    body = []
    for r in rows:
        if f"diff_{metrics[0]}_n" not in r:
            continue  # the baseline itself
        cells = [str(r[k]) for k in group_keys]
        for m in metrics:
            lo, hi, n = r[f"diff_{m}_lo"], r[f"diff_{m}_hi"], r[f"diff_{m}_n"]
            excludes = Interval(r[f"diff_{m}_mean"] or 0.0, lo, hi, n).excludes_zero
            cells += [
                fmt_interval(r[f"diff_{m}_mean"], lo, hi),
                str(n),
                "yes" if excludes else "no",
                "yes" if r[f"diff_{m}_claim"] else "no",
            ]
        body.append(cells)
    return f"Paired differences to {against}:\n\n" + md_table(head, body)


WITHIN_HEADS = {
    "gap": "ceiling − weak",
    "gap_ood": "ceiling − weak (OOD)",
    "over_budget": "w2s − strong on weak budget",
    "over_budget_ood": "w2s − strong on weak budget (OOD)",
}


def within_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """Per configuration, differences paired by seed inside it (95% t-interval): the gap the
    testbed resolves, and the student against the strong model trained on the weak budget."""
    names = [n for n in WITHIN_HEADS if any(r.get(f"within_{n}_n") for r in rows)]
    head = [*group_keys, *(f"{WITHIN_HEADS[n]} [95% CI]" for n in names), "seeds"]
    body = [
        [
            *(str(r[k]) for k in group_keys),
            *(fmt_interval(r[f"within_{n}_mean"], r[f"within_{n}_lo"], r[f"within_{n}_hi"]) for n in names),
            str(max(r[f"within_{n}_n"] for n in names)),
        ]
        for r in rows
    ]
    return "Inside each configuration, paired by seed:\n\n" + md_table(head, body)


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


def misfit_line(fit: dict[str, float | None], held: int, runs: int) -> str:
    """One sentence on the misfit-vs-gain relation across a sweep's runs."""
    if fit.get("slope") is None:
        return f"Misfit vs gain: no fit ({runs} runs, misfit constant)."
    ci = ""
    if fit.get("slope_lo") is not None and fit.get("slope_hi") is not None:
        ci = f" [95% CI {fit['slope_lo']:.2f}, {fit['slope_hi']:.2f}, runs resampled by seed]"
    return (
        f"Misfit vs gain over {runs} runs: actual gain = {fit['intercept']:+.3f} + {fit['slope']:.2f}{ci} x misfit; "
        f"gain >= misfit (Charikar et al.'s bound) on {held} of {runs} runs."
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

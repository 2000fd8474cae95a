"""Result tables as markdown (for Prefect artifacts, results documents and the terminal)."""

from __future__ import annotations

from typing import Any


def fmt_mean_se(mean: float | None, se: float | None, digits: int = 3) -> str:
    """`0.873 ± 0.004`, `0.873` without an error, `n/a` when undefined."""
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def markdown_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """One line per configuration: accuracies (mean ± s.e.), PGR and agreement."""
    head = [
        *group_keys,
        "seeds",
        "weak acc",
        "strong on weak budget acc",
        "ceiling acc",
        "w2s acc",
        "PGR",
        "PGR (AUROC)",
        "agreement on weak-wrong",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r[k]) for k in group_keys] + [
            str(len(r["seeds"])),
            fmt_mean_se(r["weak_acc_mean"], r["weak_acc_se"]),
            fmt_mean_se(r.get("strong_budget_acc_mean"), r.get("strong_budget_acc_se")),
            fmt_mean_se(r["ceiling_acc_mean"], r["ceiling_acc_se"]),
            fmt_mean_se(r["w2s_acc_mean"], r["w2s_acc_se"]),
            fmt_mean_se(r["pgr"], r["pgr_seed_se"], 2),
            fmt_mean_se(r["pgr_auroc"], r["pgr_auroc_seed_se"], 2),
            fmt_mean_se(r["agreement_weak_wrong_mean"], r["agreement_weak_wrong_se"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def methods_table(rows: list[dict[str, Any]], group_keys: list[str]) -> str:
    """Label quality next to student quality, and out-of-distribution numbers when present:
    what each method did to the labels, and whether the student gained from it."""
    ood = any(r.get("w2s_acc_ood_mean") is not None for r in rows)
    head = [*group_keys, "transfer label acc", "supervisor test acc", "w2s acc", "PGR", "self-label frac", "flip rate"]
    if ood:
        head += ["weak acc (OOD)", "ceiling acc (OOD)", "w2s acc (OOD)", "PGR (OOD)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        supervisor = "refined_acc" if r.get("refined_acc_mean") is not None else "weak_acc"
        cells = [str(r[k]) for k in group_keys] + [
            fmt_mean_se(r["labels_transfer_acc_mean"], r["labels_transfer_acc_se"]),
            fmt_mean_se(r[f"{supervisor}_mean"], r[f"{supervisor}_se"]),
            fmt_mean_se(r["w2s_acc_mean"], r["w2s_acc_se"]),
            fmt_mean_se(r["pgr"], r["pgr_seed_se"], 2),
            fmt_mean_se(r["self_label_frac_mean"], r["self_label_frac_se"], 2),
            fmt_mean_se(r["flip_rate_mean"], r["flip_rate_se"]),
        ]
        if ood:
            cells += [
                fmt_mean_se(r[f"{k}_mean"], r[f"{k}_se"]) for k in ("weak_acc_ood", "ceiling_acc_ood", "w2s_acc_ood")
            ]
            cells.append(fmt_mean_se(r["pgr_ood"], r["pgr_ood_seed_se"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

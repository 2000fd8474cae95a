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
    head = [*group_keys, "seeds", "weak acc", "ceiling acc", "w2s acc", "PGR", "PGR (AUROC)",
            "agreement on weak-wrong"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r[k]) for k in group_keys] + [
            str(len(r["seeds"])),
            fmt_mean_se(r["weak_acc_mean"], r["weak_acc_se"]),
            fmt_mean_se(r["ceiling_acc_mean"], r["ceiling_acc_se"]),
            fmt_mean_se(r["w2s_acc_mean"], r["w2s_acc_se"]),
            fmt_mean_se(r["pgr"], r["pgr_seed_se"], 2),
            fmt_mean_se(r["pgr_auroc"], r["pgr_auroc_seed_se"], 2),
            fmt_mean_se(r["agreement_weak_wrong_mean"], r["agreement_weak_wrong_se"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

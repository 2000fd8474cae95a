"""Plots written as PNG artifacts (matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w2s.io import atomic_path


def _line_chart(
    series: dict[str, tuple[list[float], list[float]]],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str | None = None,
    ylim: tuple[float, float] | None = None,
    marker: str | None = None,
) -> None:
    """One PNG with a line per named (xs, ys) series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=marker, ms=3, label=name)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_curve(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """Per-evaluation metrics against the training step (every numeric key except step/epoch)."""
    keys = sorted(
        {k for p in points for k, v in p.items() if k not in ("step", "epoch") and isinstance(v, (int, float))}
    )
    series = {key: ([p["step"] for p in points if key in p], [p[key] for p in points if key in p]) for key in keys}
    _line_chart(series, path, title, "step", marker="o")


def plot_pgr_bars(rows: list[dict[str, Any]], label_keys: list[str], path: Path, title: str) -> None:
    """PGR per configuration (from seed-averaged metrics) with the per-seed standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [" / ".join(str(r[k]) for k in label_keys) or "all" for r in rows]
    values = [r["pgr"] if r["pgr"] is not None else 0.0 for r in rows]
    errors = [r.get("pgr_seed_se") or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(rows) + 2), 3.8))
    ax.bar(range(len(rows)), values, yerr=errors, capsize=4, color="#4c72b0")
    for i, row in enumerate(rows):
        if row["pgr"] is None:  # undefined: the averaged ceiling did not beat the weak model
            ax.text(i, 0.01, "n/a", ha="center", va="bottom", fontsize=8, color="gray")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("PGR (accuracy)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_weights(history: list[dict[str, Any]], members: list[str], path: Path) -> None:
    """Ensemble member weights against the fraction of training done."""
    xs = [h["step_frac"] for h in history]
    series = {name: (xs, [h["weights"][i] for h in history]) for i, name in enumerate(members)}
    _line_chart(
        series,
        path,
        "weak-ensemble weights learned with the student",
        "fraction of student training",
        ylabel="weight",
        ylim=(0, 1),
    )

"""Plots written as PNG artifacts (matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curve(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """Per-evaluation metrics against the training step (every numeric key except step/epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for p in points for k, v in p.items()
                   if k not in ("step", "epoch") and isinstance(v, (int, float))})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        xs = [p["step"] for p in points if key in p]
        ax.plot(xs, [p[key] for p in points if key in p], marker="o", ms=3, label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""PGR against the strong model's size, from a stored size-grid sweep (`w2s results store`):

    python -m tools.plot_size_grid sizes-tweets --out docs/figures/sizes-tweets-pgr.png

One line per weak supervisor (the sweep's grid key `weak.encoder.model`), one point per strong
variant, placed at that model's parameter count (read from its config, no weights loaded), with
the 95 % Fieller interval of PGR over the seeds. A point whose gap the seeds do not resolve is
drawn hollow, without an interval.
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any

WEAK_KEY = "weak.encoder.model"


@cache  # one count per (model, depth): every weak model of a grid shares its strong variants
def parameter_count(model: str, num_layers: int | None) -> int:
    """Parameters of a registered encoder, truncated to `num_layers`, counted on a meta device."""
    import torch
    from transformers import AutoConfig, AutoModel

    from w2s.core.models.resolve import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model))
    if num_layers is not None:
        config.num_hidden_layers = num_layers
    with torch.device("meta"):
        encoder = AutoModel.from_config(config)
    return sum(p.numel() for p in encoder.parameters())


def size_rows(name: str) -> list[dict[str, Any]]:
    """The stored sweep aggregated per (variant, weak model), with each variant's strong size."""
    from w2s.analysis.aggregate import aggregate_seeds
    from w2s.analysis.stored_sweeps import load
    from w2s.project import Project

    record, rows = load(Project.discover(), name)
    rows_out = aggregate_seeds(rows, record["group_keys"])
    variants = record["spec"]["variants"]
    base = record["spec"]["overrides"]
    for row in rows_out:
        spec = {**base, **variants[row["variant"]]}
        row["params"] = parameter_count(spec["strong.model"], spec.get("strong.num_layers"))
    return rows_out


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """Draw PGR against parameters (log scale), one line per weak model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4))
    for weak in sorted({r.get(WEAK_KEY) for r in rows}, key=str):
        line = sorted((r for r in rows if r.get(WEAK_KEY) == weak), key=lambda r: r["params"])
        xs = [r["params"] / 1e6 for r in line]
        ax.plot(xs, [r["pgr"] for r in line], "-", alpha=0.5, label=f"weak: {weak} (1 layer)")
        for r, x in zip(line, xs, strict=True):
            bounded = r.get("pgr_lo") is not None and r.get("pgr_hi") is not None
            if bounded:
                err = [[r["pgr"] - r["pgr_lo"]], [r["pgr_hi"] - r["pgr"]]]
                ax.errorbar([x], [r["pgr"]], yerr=err, fmt="o", color=ax.lines[-1].get_color(), capsize=3)
            else:
                ax.plot([x], [r["pgr"]], "o", mfc="none", color=ax.lines[-1].get_color())
            ax.annotate(r["variant"], (x, r["pgr"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    sizes = sorted({r["params"] / 1e6 for r in rows})
    ax.set_xticks(sizes, [f"{x:.0f}M" for x in sizes], minor=False)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("strong model parameters (log scale)")
    ax.set_ylabel("PGR (accuracy), 95% Fieller CI over seeds")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the stored sweep (results/NAME)")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = ap.parse_args()
    rows = size_rows(args.name)
    plot(rows, args.out, f"PGR against strong-model size ({args.name})")
    for r in sorted(rows, key=lambda r: (str(r.get(WEAK_KEY)), r["params"])):
        print(f"{r['variant']:<10} weak {r.get(WEAK_KEY)!s:<11} {r['params'] / 1e6:6.1f}M  PGR {r['pgr']}")


if __name__ == "__main__":
    main()

"""Plots written as PNG artifacts (matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w2s.core.cache import ArtifactCache, cache_key
from w2s.io import atomic_path, copy_file


def _save(fig: Any, path: Path, dpi: int = 100) -> None:
    """Lay out, write `fig` as a PNG atomically, and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


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
    _save(fig, path)


def plot_curve(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """Per-evaluation metrics against the training step (every numeric key except step/epoch)."""
    keys = sorted(
        {k for p in points for k, v in p.items() if k not in ("step", "epoch") and isinstance(v, (int, float))}
    )
    series = {key: ([p["step"] for p in points if key in p], [p[key] for p in points if key in p]) for key in keys}
    _line_chart(series, path, title, "step", marker="o")


def curve_png(points: list[dict[str, Any]], kind: str, cache: ArtifactCache, folder: Path) -> Path:
    """`plot_curve` of a model's evaluations as `folder`/curve_<kind>.png, drawn once per content:
    a model reused from the cache has the same curve on every run that reuses it, so the drawing
    (about 0.17 s) is kept in the cache under the hash of the points and copied from there."""
    name = f"curve_{kind}.png"
    title = f"{kind}: evaluations during training"
    key = cache_key("plot", {"points": points, "title": title, "name": name})
    if cache.lookup("plot", key) is None:
        with cache.build("plot", key, {"title": title, "name": name}) as staging:
            plot_curve(points, staging / name, title)
    png = folder / name
    copy_file(cache.path("plot", key) / name, png)
    return png


def plot_pgr_bars(rows: list[dict[str, Any]], label_keys: list[str], path: Path, title: str) -> None:
    """PGR per configuration (from seed-averaged metrics) with its 95% bootstrap CI where there is
    one, else the per-seed standard error; `gap too small` / `n/a` where PGR is not reported."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [" / ".join(str(r[k]) for k in label_keys) or "all" for r in rows]
    values = [r["pgr"] if r["pgr"] is not None else 0.0 for r in rows]
    below, above = [], []
    for r, v in zip(rows, values, strict=True):
        lo, hi = r.get("pgr_lo"), r.get("pgr_hi")
        se = r.get("pgr_seed_se") or 0.0
        below.append(v - lo if lo is not None and hi is not None else se)
        above.append(hi - v if lo is not None and hi is not None else se)
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(rows) + 2), 3.8))
    ax.bar(range(len(rows)), values, yerr=[below, above], capsize=4, color="#4c72b0")
    for i, row in enumerate(rows):
        if row["pgr"] is None:
            note = "gap too small" if row.get("pgr_status") == "gap too small" else "n/a"
            ax.text(i, 0.01, note, ha="center", va="bottom", fontsize=7, color="gray", rotation=90)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("PGR (accuracy)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def plot_misfit_vs_gain(points: list[dict[str, Any]], colour_key: str | None, fit: dict[str, Any], path: Path) -> None:
    """Every run's misfit (to its training labels, on val) against its actual gain over those
    labels (test Brier), the y = x line of Charikar et al.'s bound (gain >= misfit) and the fitted
    line; one colour per value of `colour_key`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(_short(p.get(colour_key)) if colour_key else "runs", []).append(p)
    for name, members in groups.items():
        ax.scatter([m["misfit"] for m in members], [m["actual_gain"] for m in members], s=14, label=name)
    xs = [p["misfit"] for p in points]
    lo, hi = min(xs + [0.0]), max(xs)
    ax.plot([lo, hi], [lo, hi], color="gray", ls="--", lw=1, label="gain = misfit (the bound)")
    if fit.get("slope") is not None and fit.get("intercept") is not None:
        slope, icpt = float(fit["slope"]), float(fit["intercept"])
        ci = f" [{fit['slope_lo']:.2f}, {fit['slope_hi']:.2f}]" if fit.get("slope_lo") is not None else ""
        ax.plot(
            [lo, hi], [icpt + slope * lo, icpt + slope * hi], color="black", lw=1, label=f"fit: slope {slope:.2f}{ci}"
        )
    ax.set_xlabel("misfit to the training labels (val, squared)")
    ax.set_ylabel("actual gain over them (test Brier)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


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


def _short(name: Any) -> str:
    """A model name as a legend shows it: the last path component of a folder or hub id."""
    return str(name).rstrip("/").split("/")[-1]


def resolved_gap(row: dict[str, Any]) -> bool:
    """Whether an aggregated row's PGR is defined and its ceiling - weak gap exceeds twice the
    standard error of that difference over seeds (test-set and training noise together)."""
    if row.get("pgr") is None:
        return False
    gap = row["ceiling_acc_mean"] - row["weak_acc_mean"]
    se = ((row.get("ceiling_acc_se") or 0.0) ** 2 + (row.get("weak_acc_se") or 0.0) ** 2) ** 0.5
    return gap > 2 * se


def plot_pgr_vs_size(
    rows: list[dict[str, Any]],
    strong_key: str,
    weak_key: str | None,
    sizes: dict[str, int],
    path: Path,
    other_keys: list[str] | None = None,
    title: str = "PGR against strong-model size (± s.e. over seeds; unresolved gaps omitted)",
) -> dict[str, list[tuple[int, float]]]:
    """Burns et al.'s figure: PGR (from seed-averaged accuracies) against the strong model's
    parameter count on a log axis, one line per weak model, error bars the per-seed PGR standard
    error; a second panel shows the weak, strong-on-budget, weak-to-strong and ceiling accuracies.

    `rows` are aggregated sweep rows carrying `strong_key` and `weak_key` (e.g. `strong.model`,
    `weak.encoder.model`; None: one weak model); `sizes` maps every strong model named there to its parameter count.
    Rows that differ in `other_keys` (the sweep's other grid keys) are drawn as separate lines. A missing size is a
    ValueError naming the model. A PGR whose ceiling - weak gap the seeds do not resolve
    (`resolved_gap`) is left out of its line: its ratio is noise over a near-zero denominator.
    Returns the PGR lines as drawn: label -> (size, PGR) points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no rows to plot")
    missing = sorted({str(r.get(strong_key)) for r in rows if str(r.get(strong_key)) not in sizes})
    if missing:
        raise ValueError(f"no parameter count for strong model(s) {', '.join(missing)}")
    other = [k for k in other_keys or [] if k not in (strong_key, weak_key)]
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        weak = f"weak {_short(r.get(weak_key))}" if weak_key else "weak"
        label = " / ".join([weak, *(f"{k.split('.')[-1]}={r[k]}" for k in other)])
        lines.setdefault(label, []).append(r)

    def size(r: dict[str, Any]) -> int:
        return sizes[str(r[strong_key])]

    fig, (ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = {label: _pgr_line(ax, acc_ax, label, sorted(members, key=size), size) for label, members in lines.items()}
    _baselines(acc_ax, sorted(next(iter(lines.values())), key=size), size)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axhline(1.0, color="gray", lw=0.6, ls="--")
    for a in (ax, acc_ax):
        a.set_xscale("log")
        a.set_xlabel("strong model parameters")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    ax.set_ylabel("PGR (accuracy)")
    ax.set_title(title, fontsize=10)
    acc_ax.set_ylabel("test accuracy (mean over seeds)")
    acc_ax.set_title("accuracies", fontsize=10)
    _save(fig, path)
    return drawn


def _pgr_line(ax: Any, acc_ax: Any, label: str, members: list[dict[str, Any]], size: Any) -> list[tuple[int, float]]:
    """One weak model's PGR line (resolved gaps only) and its weak and weak-to-strong accuracies."""
    defined = [r for r in members if resolved_gap(r)]
    xs, ys = [size(r) for r in defined], [r["pgr"] for r in defined]
    ax.errorbar(xs, ys, yerr=[r.get("pgr_seed_se") or 0.0 for r in defined], marker="o", ms=4, capsize=3, label=label)
    all_x = [size(r) for r in members]
    weak_acc = [r.get("weak_acc_mean") for r in members]
    (weak_line,) = acc_ax.plot(all_x, weak_acc, ls=":", marker="s", ms=3, label=f"{label}: weak")
    acc_ax.errorbar(
        all_x,
        [r.get("w2s_acc_mean") for r in members],
        yerr=[r.get("w2s_acc_se") or 0.0 for r in members],
        marker="o",
        ms=4,
        capsize=3,
        color=weak_line.get_color(),
        label=f"{label}: weak-to-strong",
    )
    return list(zip(xs, ys, strict=True))


def _baselines(acc_ax: Any, first: list[dict[str, Any]], size: Any) -> None:
    """The ceiling and strong-on-budget accuracies (they depend on the strong model only)."""
    xs = [size(r) for r in first]
    acc_ax.plot(xs, [r.get("ceiling_acc_mean") for r in first], color="black", marker="^", ms=4, label="ceiling")
    if any(r.get("strong_budget_acc_mean") is not None for r in first):
        budget = [r.get("strong_budget_acc_mean") for r in first]
        acc_ax.plot(xs, budget, color="gray", ls="--", marker="v", ms=4, label="strong on weak's budget")

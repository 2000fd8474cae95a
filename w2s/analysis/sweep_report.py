"""The report of a sweep, from its points' rows: aggregate the seeds (paired differences to the
baseline configuration, PGR intervals), write the tables (CSV, JSON, markdown), the figures and
the DVC PGR view. A library call: the sweep flow's task only logs and publishes what it wrote.

    from w2s.analysis.sweep_report import write_report
    report = write_report(rows, ["method"], Path(".w2s/sweeps/my-sweep"), {"method": "naive"}, project_root)
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2s.analysis.aggregate import MISFIT_PAIRS, aggregate_seeds, misfit_fit
from w2s.analysis.dvc_views import write_sweep_view
from w2s.analysis.plots import plot_misfit_vs_gain, plot_pgr_bars, plot_pgr_vs_size
from w2s.analysis.tables import (
    differences_table,
    dynamics_table,
    markdown_table,
    methods_table,
    misfit_line,
    selection_table,
    within_table,
)
from w2s.io import atomic_path, write_json, write_text

log = logging.getLogger(__name__)

STRONG_KEY = "strong.model"
CORRECT_FILE = "test_correct.parquet"  # per test row: 0/1 correctness of weak, w2s and ceiling (raw output)


SWEEP_FILE = "sweep.json"  # the sweep's config, grouping, baseline and seed-ledger declaration


def write_sweep_record(
    sweep_dir: Path,
    sweep_config: dict[str, Any],
    group_keys: list[str],
    baseline: dict[str, Any],
    declaration: dict[str, Any],
) -> None:
    """What a sweep was, beside its outputs (`sweep.json`): the config, how its rows group and
    compare, and its seed-ledger entry (config file, commit, seeds per testbed, confirmatory)."""
    record = {"spec": sweep_config, "group_keys": group_keys, "baseline": baseline, **declaration}
    write_json(sweep_dir / SWEEP_FILE, record)


def point_dir(sweep_dir: Path, index: int) -> Path:
    """Where a sweep point keeps its files (its per-row test correctness among them)."""
    return sweep_dir / f"point-{index:03d}"


@dataclass(frozen=True)
class SweepReport:
    """What the report wrote: the aggregated table, its markdown, and the files (in `dir`)."""

    table: list[dict[str, Any]]
    markdown: str
    dir: Path
    files: list[str]


def write_report(
    rows: list[dict[str, Any]],
    group_keys: list[str],
    out: Path,
    baseline: dict[str, Any] | None = None,
    project_root: Path | None = None,
) -> SweepReport:
    """Aggregate `rows` (one per point: grid values, seed, metrics, `point`) by `group_keys`;
    write results.csv / .json / .md, points.json, pgr.png (and the misfit and PGR-vs-size figures
    where they apply) into `out`, and the project's DVC PGR view when `project_root` is given."""
    table = aggregate_seeds(rows, group_keys, baseline)
    write_json(out / "points.json", rows)
    write_json(out / "results.json", table)
    _write_csv(out / "results.csv", table)
    md = _markdown(table, group_keys, baseline)
    plot_pgr_bars(table, group_keys, out / "pgr.png", "PGR by configuration (95% CI over seeds, or ± s.e.)")
    if project_root is not None:
        write_sweep_view(project_root, table, group_keys)
    files = ["results.csv", "results.md", "pgr.png", "points.json"]
    misfit, gain, gain_name, bound = MISFIT_PAIRS[0]  # the squared pair: the one the bound is about
    found = misfit_fit(rows, misfit, gain)
    if found is not None:
        fitted, fit = found
        write_json(out / "misfit_fit.json", fit)
        colour = next((k for k in group_keys if k.startswith("weak.")), group_keys[0] if group_keys else None)
        plot_misfit_vs_gain(fitted, colour, fit, out / "misfit_vs_gain.png")
        md += "\n\n" + misfit_line(fit, misfit, gain_name, bound)
        files += ["misfit_vs_gain.png", "misfit_fit.json"]
    write_text(out / "results.md", md + "\n")  # once, with every section
    if STRONG_KEY in group_keys and _plot_vs_size(table, group_keys, out / "pgr_vs_size.png"):
        files.append("pgr_vs_size.png")
    return SweepReport(table, md, out, files)


def _write_csv(path: Path, table: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        # the baseline row has no `diff_*` columns: the header is every row's keys, in order
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in table for k in r)))
        writer.writeheader()
        writer.writerows(
            {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()} for r in table
        )


def _markdown(table: list[dict[str, Any]], group_keys: list[str], baseline: dict[str, Any] | None) -> str:
    """Every table the rows support, in order."""
    md = markdown_table(table, group_keys) + "\n\n" + methods_table(table, group_keys)
    if any(r.get("val_acc_last_mean") is not None for r in table):
        md += "\n\nTraining curves on ground-truth val (read after training):\n\n" + dynamics_table(table, group_keys)
    if any(r.get("selection_regret_mean") is not None for r in table):
        md += "\n\nWeak-model selection:\n\n" + selection_table(table, group_keys)
    if any(r.get("within_gap_n") for r in table):
        md += "\n\n" + within_table(table, group_keys)
    if any(k.startswith("diff_") for r in table for k in r):
        md += "\n\n" + differences_table(table, group_keys, baseline or {})
    return md


def _plot_vs_size(table: list[dict[str, Any]], group_keys: list[str], path: Path) -> bool:
    """PGR against the strong model's parameter count (Burns et al.'s figure), one line per weak
    model (the first `weak.*` grid key, if any). Parameters are counted from each model's config
    (no weights loaded); a model whose config cannot be read skips the figure with a warning."""
    from w2s.core.plan import count_params
    from w2s.errors import W2SError

    weak_key = next((k for k in group_keys if k.startswith("weak.")), None)
    try:
        sizes = {str(r[STRONG_KEY]): count_params(str(r[STRONG_KEY]), r.get("strong.num_layers"))[0] for r in table}
        others = [k for k in group_keys if k not in (STRONG_KEY, weak_key)]
        plot_pgr_vs_size(table, STRONG_KEY, weak_key, sizes, path, other_keys=others)
    except (W2SError, OSError, ValueError) as exc:
        log.warning("no PGR-vs-size figure: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return False
    return True

"""Tasks of a sweep: one grid point through the library, and the aggregated report."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.retry import RETRY
from w2s.config import Config
from w2s.core.cache import ArtifactCache
from w2s.core.stats import clustered_slope
from w2s.io import atomic_path, write_json, write_text
from w2s.ops import tracking
from w2s.pipeline.aggregate import POINT_KEY, aggregate_seeds
from w2s.pipeline.dvc_views import write_sweep_view
from w2s.pipeline.plots import plot_misfit_vs_gain, plot_pgr_bars, plot_pgr_vs_size
from w2s.pipeline.report import (
    differences_table,
    dynamics_table,
    markdown_table,
    methods_table,
    misfit_line,
    selection_table,
    within_table,
)
from w2s.pipeline.runner import run_config
from w2s.pipeline.steps import correctness_on_test
from w2s.project import Project


@task(name="sweep-point", cache_policy=NO_CACHE, **RETRY)
def run_point(project_dir: str, sweep_dir: str, parent_run_id: str, index: int, point: dict, config: dict) -> dict:
    """Run one configuration; log it as a nested MLflow run; return its grid values + metrics."""
    project = Project(Path(project_dir))
    tracking.configure(project)  # the point may run in another process (a Dask worker)
    cfg = Config.model_validate(config)
    name = "point-" + "-".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
    point_dir = Path(sweep_dir) / f"point-{index:03d}"
    with tracking.stage_run(parent_run_id, name) as run:
        result = run_config(cfg, project, point_dir, ArtifactCache(project.cache_dir))
        models = {"weak": result.weak, "w2s": result.student, "ceiling": result.ceiling}
        with atomic_path(point_dir / CORRECT_FILE) as tmp:
            correctness_on_test(result.splits, models).to_parquet(tmp, index=False)
        run.params({"point": point, "config": config})
        run.metrics(result.metrics)
        run.tags({f"reused_{name}": reused for name, reused in result.reused().items()})
    get_run_logger().info(
        "%s: w2s %.3f, weak %.3f, ceiling %.3f",
        name,
        result.metrics["w2s_acc"],
        result.metrics["weak_acc"],
        result.metrics["ceiling_acc"],
    )
    return {
        **point,
        POINT_KEY: index,
        "seed": cfg.seed,
        **result.metrics,
        # weak-model selection's hindsight regret (the flow logs it on its select stage)
        **(result.selection.metrics() if result.selection is not None else {}),
        "reused": result.reused(),
    }


STRONG_KEY = "strong.model"
CORRECT_FILE = "test_correct.parquet"  # per test row: 0/1 correctness of weak, w2s and ceiling


def _plot_vs_size(table: list[dict], group_keys: list[str], path: Path) -> bool:
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
        get_run_logger().warning("no PGR-vs-size figure: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return False
    return True


@task(name="sweep-report", cache_policy=NO_CACHE, **RETRY)
def report(
    project_dir: str,
    rows: list[dict],
    group_keys: list[str],
    sweep_dir: str,
    parent_run_id: str,
    baseline: dict | None = None,
) -> dict:
    """Aggregate seeds (paired differences to `baseline`, PGR CIs); write CSV/JSON/markdown and a
    PGR bar chart; publish them, and the PGR table as the project's DVC plot."""
    out = Path(sweep_dir)
    correct = {
        r[POINT_KEY]: pd.read_parquet(path)
        for r in rows
        if (path := out / f"point-{r[POINT_KEY]:03d}" / CORRECT_FILE).is_file()
    }
    table = aggregate_seeds(rows, group_keys, baseline, correct)
    write_json(out / "points.json", rows)
    write_json(out / "results.json", table)
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        # the baseline row has no `diff_*` columns: the header is every row's keys, in order
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in table for k in r)))
        writer.writeheader()
        writer.writerows(
            {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()} for r in table
        )
    md = markdown_table(table, group_keys) + "\n\n" + methods_table(table, group_keys)
    if any(r.get("val_acc_last_mean") is not None for r in table):
        md += "\n\nTraining curves on ground-truth val (read after training):\n\n" + dynamics_table(table, group_keys)
    if any(r.get("selection_regret_mean") is not None for r in table):
        md += "\n\nWeak-model selection:\n\n" + selection_table(table, group_keys)
    if any(r.get("within_gap_n") for r in table):
        md += "\n\n" + within_table(table, group_keys)
    if any(k.startswith("diff_") for r in table for k in r):
        md += "\n\n" + differences_table(table, group_keys, baseline or {})
    plot_pgr_bars(table, group_keys, out / "pgr.png", "PGR by configuration (95% CI, or ± s.e. over seeds)")
    write_sweep_view(Path(project_dir), table, group_keys)
    published = ["results.csv", "results.md", "pgr.png", "points.json"]
    fitted = [r for r in rows if r.get("misfit") is not None and r.get("actual_gain") is not None]
    if len(fitted) >= 3:
        fit = clustered_slope(
            [r["misfit"] for r in fitted], [r["actual_gain"] for r in fitted], [r["seed"] for r in fitted]
        )
        held = sum(r["actual_gain"] >= r["misfit"] for r in fitted)
        write_json(out / "misfit_fit.json", {**fit, "bound_holds": held, "runs": len(fitted)})
        colour = next((k for k in group_keys if k.startswith("weak.")), group_keys[0] if group_keys else None)
        plot_misfit_vs_gain(fitted, colour, fit, out / "misfit_vs_gain.png")
        md += "\n\n" + misfit_line(fit, held, len(fitted))
        published += ["misfit_vs_gain.png", "misfit_fit.json"]
    write_text(out / "results.md", md + "\n")  # once, with every section
    if STRONG_KEY in group_keys and _plot_vs_size(table, group_keys, out / "pgr_vs_size.png"):
        published.append("pgr_vs_size.png")
    run = tracking.RunLog(parent_run_id)
    for name in published:
        run.artifact(out / name)
    create_markdown_artifact(md, key="w2s-sweep-results", description="Sweep results (mean ± s.e.)")
    create_table_artifact(
        [{k: v for k, v in r.items() if not isinstance(v, list)} for r in table], key="w2s-sweep-table"
    )
    return {"table": table, "markdown": md, "dir": str(out)}

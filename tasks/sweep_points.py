"""Tasks of a sweep: one grid point through the library, and the aggregated report."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from w2s.analysis.sweep_report import write_report
from w2s.config import Config
from w2s.ops import tracking
from w2s.pipeline import sweep_point
from w2s.project import Project
from w2s.tasks.retry import RETRY


@task(name="sweep-point", cache_policy=NO_CACHE, **RETRY)
def run_point(project_dir: str, sweep_dir: str, parent_run_id: str, index: int, point: dict, config: dict) -> dict:
    """Run one configuration (`w2s.pipeline.sweep_point`), logged as a nested MLflow run; return
    its grid values and metrics."""
    project = Project(Path(project_dir))
    tracking.configure(project)  # the point may run in another process (a Dask worker)
    name = "point-" + "-".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
    with tracking.stage_run(parent_run_id, name) as run:
        row, result = sweep_point.run_point(Config.model_validate(config), project, Path(sweep_dir), index, point)
        run.params({"point": point, "config": config})
        run.metrics(result.metrics)
        run.tags({f"reused_{name}": reused for name, reused in result.reused().items()})
    m = result.metrics
    get_run_logger().info("%s: w2s %.3f, weak %.3f, ceiling %.3f", name, m["w2s_acc"], m["weak_acc"], m["ceiling_acc"])
    return row


@task(name="sweep-report", cache_policy=NO_CACHE, **RETRY)
def report(
    project_dir: str,
    rows: list[dict],
    group_keys: list[str],
    sweep_dir: str,
    parent_run_id: str,
    baseline: dict | None = None,
) -> dict:
    """Write the sweep report (`w2s.analysis.sweep_report`), log its files to the sweep's MLflow
    run and publish its table as Prefect artifacts."""
    done = write_report(rows, group_keys, Path(sweep_dir), baseline, Path(project_dir))
    run = tracking.RunLog(parent_run_id)
    for name in done.files:
        run.artifact(done.dir / name)
    create_markdown_artifact(done.markdown, key="w2s-sweep-results", description="Sweep results (mean ± s.e.)")
    create_table_artifact(
        [{k: v for k, v in r.items() if not isinstance(v, list)} for r in done.table], key="w2s-sweep-table"
    )
    return {"table": done.table, "markdown": done.markdown, "dir": str(done.dir)}

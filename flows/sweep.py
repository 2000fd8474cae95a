"""`w2s sweep`: methods x seeds x datasets x weak models as one Prefect flow.

Each grid point runs through the library in a task on the configured task runner; weak models,
weak labels and ceilings are shared between points through the content-addressed cache (a
method change reuses the weak model and the ceiling of the same data and seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from w2s.analysis.sweep_report import write_sweep_record
from w2s.core import stopping
from w2s.ops import activity
from w2s.pipeline import seed_ledger
from w2s.pipeline.sweep_grid import SweepConfig, expand, sweep_name
from w2s.project import Project
from w2s.tasks import sweep_points, tracking


@flow(name="w2s-sweep", log_prints=True, validate_parameters=False)
def sweep(sweep_config: dict[str, Any], project_dir: str, declaration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record the sweep in the seed ledger (`declaration`: its entry, as `w2s sweep` declared it
    from the config file; without one, declared here with no config file), then run every grid
    point, aggregate seeds, publish the table and the PGR chart."""
    spec = SweepConfig.model_validate(sweep_config)
    project = Project(Path(project_dir))
    points = expand(spec, project.root)
    if declaration is None:
        declaration = seed_ledger.declare(project, spec, points, None, sweep_name(sweep_config))
    seed_ledger.record(project, declaration)  # before any point runs; refuses a confirmatory reuse
    name = declaration["sweep"]
    sweep_dir = project.sweeps_dir / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_sweep_record(sweep_dir, sweep_config, spec.group_keys, spec.comparison_baseline, declaration)
    base = points[0][1].model_dump(mode="json")
    with activity.working(project):  # `w2s gc` waits until the sweep is over
        parent_id, tags = tracking.start(project_dir, base, name, None, seed_ledger.run_tags(declaration))
        ok = False
        try:
            runner = sweep_points.run_point.with_options(task_run_name="point-{index}")
            # a termination signal reaches this thread only; the scope stops the points training
            # in the runner's threads at their next batch, instead of the exit waiting them out
            with stopping.scope():
                futures = [
                    runner.submit(project_dir, str(sweep_dir), parent_id, i, point, cfg.model_dump(mode="json"))
                    for i, (point, cfg) in enumerate(points)
                ]
                rows = [f.result() for f in futures]
            result = sweep_points.report(
                project_dir, rows, spec.group_keys, str(sweep_dir), parent_id, spec.comparison_baseline
            )
            seed_ledger.finish(project, name)  # a confirmatory start that finished is resumed no more
            ok = True
        finally:
            tracking.finish(parent_id, {**tags, "method": "sweep"}, ok)
    return {**result, "rows": rows, "mlflow_run_id": parent_id, "points": len(points)}


def with_runner(spec: SweepConfig):
    """The sweep flow bound to the task runner the sweep config names."""
    if spec.runner == "threads":
        return sweep.with_options(task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=spec.max_workers)))
    from prefect_dask import DaskTaskRunner

    if spec.dask_address:
        runner = DaskTaskRunner(address=spec.dask_address)
    else:  # one single-threaded worker process per point slot: torch gets its own cores
        runner = DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": spec.max_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            },
        )
    # Prefect types task_runner by its own futures; Dask's runner is one all the same
    return sweep.with_options(task_runner=cast(Any, runner))

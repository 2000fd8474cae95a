"""`w2s sweep`: methods x seeds x datasets x weak models as one Prefect flow.

Each grid point runs through the library in a task on the configured task runner; weak models,
weak labels and ceilings are shared between points through the content-addressed cache (a
method change reuses the weak model and the ceiling of the same data and seed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from w2s.core.config import stable_hash
from w2s.ops import activity
from w2s.pipeline.sweep_grid import SweepConfig, expand
from w2s.project import Project
from w2s.tasks import sweep_points, tracking


@flow(name="w2s-sweep", log_prints=True, validate_parameters=False)
def sweep(sweep_config: dict[str, Any], project_dir: str) -> dict[str, Any]:
    """Run every grid point, aggregate seeds, publish the table and the PGR chart."""
    spec = SweepConfig.model_validate(sweep_config)
    project = Project(Path(project_dir))
    points = expand(spec, project.root)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"sweep-{stamp}-{stable_hash(sweep_config)[:6]}"
    sweep_dir = project.sweeps_dir / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    base = points[0][1].model_dump(mode="json")
    with activity.working(project):  # `w2s gc` waits until the sweep is over
        parent_id, tags = tracking.start(project_dir, base, name, None)
        ok = False
        try:
            runner = sweep_points.run_point.with_options(task_run_name="point-{index}")
            futures = [
                runner.submit(project_dir, str(sweep_dir), parent_id, i, point, cfg.model_dump(mode="json"))
                for i, (point, cfg) in enumerate(points)
            ]
            rows = [f.result() for f in futures]
            result = sweep_points.report(
                project_dir, rows, spec.group_keys, str(sweep_dir), parent_id, spec.comparison_baseline
            )
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

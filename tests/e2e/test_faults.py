"""Faults: an MLflow server that never answers fails the run cleanly after Prefect's retries.
(One that comes back during the retries is ridden out: tests/test_servers.py, on a served
deployment; a killed strong training resuming from its checkpoint: tests/test_distributed.py.)"""

from __future__ import annotations

import time
from pathlib import Path

from cli.main import main

from conftest import free_port


def _leftovers(project: Path) -> list[str]:
    state = project / ".w2s"
    found = [p for p in [state / "runs", state / "cache", state / "mlflow.db", project / "weak_labels"] if p.exists()]
    found += list(project.rglob("*.tmp"))
    return [str(p.relative_to(project)) for p in found]


def test_an_unreachable_mlflow_server_fails_the_run_cleanly_after_the_retries(project, capsys, monkeypatch):
    import asyncio

    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    code = main(["run"])
    err = capsys.readouterr().err
    assert code == 3, "service unavailable: its own exit code, not bad input's 2"
    assert (
        err.strip().splitlines()[-1].startswith(f"error: MLflow tracking server http://127.0.0.1:{port} is unreachable")
    ), err[-2000:]
    assert "Traceback" not in err
    assert time.monotonic() - started > (2 + 4 + 8) * 0.8  # the backoff was waited out (±20 % jitter)
    assert _leftovers(project) == []

    async def last_flow_run():
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.sorting import FlowRunSort

        async with get_client() as client:
            runs = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
            tasks = await client.read_task_runs()
            return runs[0], [t for t in tasks if t.flow_run_id == runs[0].id]

    flow_run, task_runs = asyncio.run(last_flow_run())
    assert flow_run.name and flow_run.state.is_failed()
    (start,) = [t for t in task_runs if t.name.startswith("start-tracking")]
    assert start.run_count == 4 and start.state.is_failed()

"""Faults: an MLflow server that never answers fails the run cleanly after Prefect's retries; one
that comes back during the retries is ridden out and the run succeeds. (A killed strong training
resuming from its checkpoint: tests/test_distributed.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import BIN, TINY_CONFIG, free_port, make_project

from cli.main import main

pytestmark = pytest.mark.slow


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
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(f"error: MLflow tracking server http://127.0.0.1:{port} "
                                                   "is unreachable"), err[-2000:]
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


def _forward(listen_port: int, target_port: int, stop: threading.Event) -> threading.Thread:
    """A TCP relay from listen_port to target_port: the network path coming back."""
    server = socket.create_server(("127.0.0.1", listen_port))
    server.settimeout(0.5)

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        with server:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", target_port))
                for a, b in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=pump, args=(a, b), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_a_transient_mlflow_outage_is_retried_and_the_run_succeeds(tmp_path, bundled_dir):
    project = make_project(tmp_path / "proj", bundled_dir, TINY_CONFIG)
    server_port, public_port = free_port(), free_port()
    log = tmp_path / "mlflow.log"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(server_port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    stop = threading.Event()
    try:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{public_port}",
               "PATH": f"{BIN}:{os.environ['PATH']}", "PREFECT_LOGGING_LEVEL": "INFO"}
        run = subprocess.Popen([str(BIN / "w2s"), "run"], cwd=project, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines, forwarding = [], False
        assert run.stdout is not None
        for line in run.stdout:
            lines.append(line)
            if "Retry 1/3" in line and not forwarding:
                # the first attempt failed: bring the path to the (by now running) server back
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with socket.socket() as s:
                        if s.connect_ex(("127.0.0.1", server_port)) == 0:
                            break
                    time.sleep(0.2)
                _forward(public_port, server_port, stop)
                forwarding = True
        out = "".join(lines)
        assert run.wait(60) == 0, out[-4000:]
        assert "Retry 1/3" in out and "Task run 'start-tracking" in out
        from mlflow import MlflowClient

        server_uri = f"http://127.0.0.1:{server_port}"
        client = MlflowClient(server_uri, registry_uri=server_uri)  # not the registry an earlier test set
        version = client.get_model_version_by_alias("w2s-test", "challenger")
        assert version.version == "1" and version.tags["data_md5"]
    finally:
        stop.set()
        os.killpg(server.pid, 15)
        server.wait(30)

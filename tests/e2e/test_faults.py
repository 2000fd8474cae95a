"""Faults: an MLflow server that never answers fails the run cleanly after Prefect's retries.
(One that comes back during the retries is ridden out: tests/test_servers.py, on a served
deployment; a killed strong training resuming from its checkpoint: tests/test_distributed.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from w2s.cli.main import main

from conftest import free_port


def _leftovers(project: Path) -> list[str]:
    state = project / ".w2s"
    found = [p for p in [state / "runs", state / "cache", state / "mlflow.db", project / "weak_labels"] if p.exists()]
    found += list(project.rglob("*.tmp"))
    return [str(p.relative_to(project)) for p in found]


def _spawn(project: Path, args: list[str], **env: str) -> tuple[subprocess.Popen, list[str], threading.Thread]:
    """`w2s ARGS` started in `project` as a user's shell would (no MLflow setting exported, `env`
    added), its merged output collected into the returned list by the returned reader thread."""
    from conftest import BIN

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "W2S_PROJECT_DIR"}
    clean.update(PATH=f"{BIN}{os.pathsep}{clean['PATH']}", **env)
    proc = subprocess.Popen(
        [str(BIN / "w2s"), *args], cwd=project, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # one at a time: a test watches the list grow
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, lines, reader


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


def test_sigterm_mid_training_fails_the_runs_crashes_the_flow_and_leaves_nothing_half_written(warm_project: Path):
    """A scheduler stopping a worker sends SIGTERM. Prefect turns it into a crash of the flow run
    (and re-raises it, so the process ends by the signal); the stage and parent MLflow runs are
    closed FAILED on the way out, no version is registered and no staging folder or temp file
    is left. The student trains from scratch (a new lr, more epochs); weak labels come from the
    warm cache."""
    import asyncio
    import signal

    from mlflow import MlflowClient

    proc, lines, reader = _spawn(warm_project, ["run", "--set", "strong.lr=3e-4", "--set", "strong.epochs=4"])
    uri = f"sqlite:///{warm_project / '.w2s' / 'mlflow.db'}"
    c = MlflowClient(uri, registry_uri=uri)

    def training() -> bool:
        if not (warm_project / ".w2s" / "mlflow.db").is_file():
            return False
        try:  # the run may still be creating the store's schema
            exp = c.get_experiment_by_name("w2s")
            where = "attributes.run_name = 'strong-w2s' and attributes.status = 'RUNNING'"
            return exp is not None and bool(c.search_runs([exp.experiment_id], where))
        except Exception:
            return False

    deadline = time.time() + 300
    while not training():
        assert proc.poll() is None and time.time() < deadline, "".join(lines[-30:])
        time.sleep(1)
    time.sleep(2)  # the student is training now
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=180)
    reader.join(timeout=10)
    log = "".join(lines)
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), log[-3000:]

    runs = c.search_runs([c.get_experiment_by_name("w2s").experiment_id])
    status = {r.info.run_name: r.info.status for r in runs}
    assert "RUNNING" not in status.values(), status
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FAILED" and status["strong-w2s"] == "FAILED", status
    assert c.search_model_versions("name='w2s-test'") == []

    async def flow_state(flow_run_id: str) -> str:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state.type.value

    assert asyncio.run(flow_state(parent.data.tags["prefect_flow_run_id"])) == "CRASHED"
    state = warm_project / ".w2s"
    staging = [p for p in (state / "cache").glob("*/.*")] + list(warm_project.rglob("*.tmp"))
    assert staging == [], staging


def test_sigterm_stops_a_sweep_at_the_running_points_next_batch(warm_project: Path):
    """A sweep trains its points in a thread pool. SIGTERM reaches the main thread only, and
    Python cannot interrupt the pool's threads: the exit used to wait for the running point to
    finish (here minutes; a scheduler's grace period is shorter). The stop scope ends the point
    at its next batch; its MLflow run and the sweep's close FAILED, and nothing is half-written."""
    import signal

    from mlflow import MlflowClient

    # one point whose student would train for minutes (a new lr: nothing of it is cached)
    (warm_project / "sweep.yaml").write_text(
        "base: params.yaml\noverrides: {strong.lr: 2.5e-4, strong.epochs: 200}\ngrid: {seed: [0]}\n"
    )
    # a progress line at every step, at the INFO level Prefect logs a task's prints with
    proc, lines, reader = _spawn(
        warm_project, ["sweep", "--config", "sweep.yaml"], W2S_PROGRESS_SECONDS="0", PREFECT_LOGGING_LEVEL="INFO"
    )
    try:
        deadline = time.monotonic() + 300
        while not any(": step " in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines[-30:])
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # the point alone would train on for minutes
    finally:
        proc.kill()
        proc.wait()
    reader.join(timeout=10)
    log = "".join(lines)
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), log[-3000:]
    assert "done in" not in log, "no training loop ran to its end"

    uri = f"sqlite:///{warm_project / '.w2s' / 'mlflow.db'}"
    c = MlflowClient(uri, registry_uri=uri)
    runs = c.search_runs([c.get_experiment_by_name("w2s").experiment_id])
    status = {r.info.run_name: r.info.status for r in runs}
    assert "RUNNING" not in status.values(), status
    point = next(name for name in status if name.startswith("point-"))
    sweep = next(r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert status[point] == status[sweep] == "FAILED", status
    staging = list((warm_project / ".w2s" / "cache").glob("*/.*")) + list(warm_project.rglob("*.tmp"))
    assert staging == [], staging


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(stat.parent.name)] = cmdline
        except (OSError, IndexError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_sigkilled_run_leaves_no_prefect_server_and_the_next_gc_marks_its_runs_killed(warm_project: Path):
    """SIGKILL (or the OOM killer) runs no handler: the pipeline's MLflow runs stay RUNNING and,
    unless something owns it, Prefect's temporary server lives on, orphaned, holding a port and
    memory. The server must go with the CLI, and the next `w2s gc` marks the dead run's runs
    KILLED."""
    import os
    import signal
    import subprocess

    from mlflow import MlflowClient

    from conftest import BIN

    drop = ("MLFLOW_", "PREFECT_API", "W2S_PROJECT_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    proc = subprocess.Popen(
        [str(BIN / "w2s"), "run", "--set", "strong.lr=2e-4", "--set", "strong.epochs=3"],
        cwd=warm_project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"sqlite:///{warm_project / '.w2s' / 'mlflow.db'}"
    c = MlflowClient(uri, registry_uri=uri)

    def running_stage() -> bool:
        try:  # the run may still be creating the store's schema
            exp = c.get_experiment_by_name("w2s")
            where = "attributes.run_name = 'strong-w2s' and attributes.status = 'RUNNING'"
            return exp is not None and bool(c.search_runs([exp.experiment_id], where))
        except Exception:
            return False

    deadline = time.time() + 300
    while not running_stage():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its student trained"
        time.sleep(0.5)
    servers = [pid for pid, cmd in _children(proc.pid).items() if "prefect.server.api.server:create_app" in cmd]
    assert len(servers) == 1, _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while _alive(servers[0]) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(servers[0]), "the killed run's Prefect server outlived it"

    exp_id = c.get_experiment_by_name("w2s").experiment_id
    left = {r.info.run_id: r.info.run_name for r in c.search_runs([exp_id], "attributes.status = 'RUNNING'")}
    assert "strong-w2s" in left.values() and len(left) == 2, left  # the pipeline run and its training stage
    done = subprocess.run(
        [str(BIN / "w2s"), "gc", "--json"], cwd=warm_project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(json.loads(done.stdout)["killed_runs"]) == sorted(left)
    assert {c.get_run(r).info.status for r in left} == {"KILLED"}
    assert not c.search_runs([exp_id], "attributes.status = 'RUNNING'")

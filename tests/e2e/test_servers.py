"""Against real servers on loopback: a `prefect server start` and an `mlflow server`, both backed
by a PostgreSQL cluster started from the Debian packages (SQLite where those are not installed),
both with basic auth on as in infra/docker-compose.yml, and `w2s deploy` serving the cron deployment
of prefect.yaml. A triggered run meets an MLflow server it cannot reach, is retried by Prefect until
the network path is back, and completes; its runs, registered version, tags and alias must be on
the MLflow server and in its database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from w2s.ops.tracking import LINEAGE_TAGS

from conftest import BIN, TINY_CONFIG, free_port, make_project

# The servers' credentials: MLflow's admin account (basic-auth app) and Prefect's `user:password`.
MLFLOW_USER, MLFLOW_PASSWORD = "w2s-admin", "w2s-test-mlflow-password"
PREFECT_AUTH = "w2s:w2s-test-prefect-password"


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


def _status(url: str, auth: str | None = None) -> int:
    """The HTTP status of a GET, with `user:password` as basic auth if given."""
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _start(cmd: list[str], env: dict, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _runuser() -> str | None:
    """util-linux's runuser, also where PATH lacks the sbin folders (a root shell started with `env -i`)."""
    found = (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK))
    return shutil.which("runuser") or next(found, None)


def _pg_bin() -> Path | None:
    """The PostgreSQL server binaries of the Debian packages, if installed and runnable here
    (as root they run as the `postgres` user, through runuser)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or (os.geteuid() == 0 and _runuser() is None):
        return None
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian packages create a `postgres` user for it.
    return [str(_runuser()), "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict]:
    """Backend URLs for the two servers: databases in a throwaway PostgreSQL cluster, else SQLite."""
    pg = _pg_bin()
    if pg is None:
        yield {
            "kind": "sqlite",
            "mlflow": f"sqlite:///{tmp_path / 'mlflow-server.db'}",
            "prefect": f"sqlite+aiosqlite:///{tmp_path / 'prefect-server.db'}",
        }
        return
    root = Path(tempfile.mkdtemp(prefix="w2s-pg-", dir="/tmp"))  # readable by the postgres user
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(_as_postgres([str(pg / "initdb"), "-D", str(root / "data"), "--auth=trust", "-U", "w2s"]), **run)
    subprocess.run(
        _as_postgres(
            [
                str(pg / "pg_ctl"),
                "-D",
                str(root / "data"),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
                "start",
            ]
        ),
        **run,
    )
    try:
        for db in ("mlflow", "prefect"):
            subprocess.run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "w2s", db], **run)
        base = f"w2s@127.0.0.1:{port}"
        yield {
            "kind": "postgresql",
            "mlflow": f"postgresql+psycopg2://{base}/mlflow",
            "prefect": f"postgresql+asyncpg://{base}/prefect",
        }
    finally:
        subprocess.run(
            _as_postgres([str(pg / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3-compatible server (moto's) on loopback with a `dvc` bucket; yields its endpoint."""
    port = free_port()
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "w2s-test"),
        ("AWS_SECRET_ACCESS_KEY", "w2s-test-secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(key, value)
    proc = _start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), tmp_path / "s3.log")
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_http(f"{endpoint}/", proc, tmp_path / "s3.log")
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="dvc")
        yield endpoint
    finally:
        _stop(proc)


def _use_s3_remote(project: Path, endpoint: str) -> None:
    """Make the S3 server the project's default DVC remote, committed like a team would."""

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=project, check=True, capture_output=True, text=True)

    run(sys.executable, "-m", "dvc", "remote", "add", "-d", "team", "s3://dvc/w2s")
    run(sys.executable, "-m", "dvc", "remote", "modify", "team", "endpointurl", endpoint)
    run("git", "commit", "-qam", "DVC remote: team S3 store")


@pytest.fixture
def servers(tmp_path: Path, databases: dict) -> Iterator[dict]:
    """A Prefect server and an MLflow tracking server, each in its own process on loopback, each
    requiring basic auth: MLflow's basic-auth app with the config infra/mlflow/auth-entrypoint.sh
    writes (its users in a SQLite file), Prefect's PREFECT_SERVER_API_AUTH_STRING. MLflow caches a
    checked login for the test's length: without it, every request pays a password hash (scrypt,
    some 0.1 s of CPU), several hundred of them in a run."""
    auth_ini = tmp_path / "mlflow-auth.ini"
    auth_ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'mlflow-auth.db'}\n"
        f"admin_username = {MLFLOW_USER}\n"
        f"admin_password = {MLFLOW_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 900\n"
    )
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-server-home"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": databases["prefect"],
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_SERVER_API_AUTH_STRING": PREFECT_AUTH,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "w2s-test-flask-secret-key",
    }
    env.pop("PREFECT_API_URL", None)
    pport, mport = free_port(), free_port()
    procs = [
        _start(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(pport)],
            env,
            tmp_path / "prefect.log",
        ),
        _start(
            [
                str(BIN / "mlflow"),
                "server",
                "--app-name",
                "basic-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(mport),
                "--workers",
                "1",
                "--backend-store-uri",
                databases["mlflow"],
                "--artifacts-destination",
                str(tmp_path / "mlflow-artifacts"),
            ],
            env,
            tmp_path / "mlflow.log",
        ),
    ]
    try:  # both health endpoints answer without credentials
        _wait_http(f"http://127.0.0.1:{pport}/api/health", procs[0], tmp_path / "prefect.log")
        _wait_http(f"http://127.0.0.1:{mport}/health", procs[1], tmp_path / "mlflow.log")
        yield {
            "prefect": f"http://127.0.0.1:{pport}/api",
            "mlflow": f"http://127.0.0.1:{mport}",
            "artifacts": tmp_path / "mlflow-artifacts",
            "databases": databases,
        }
    finally:
        for p in procs:
            _stop(p)


async def _deployment(name: str, server: subprocess.Popen, log: Path, timeout: float = 300):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            try:
                return await client.read_deployment_by_name(name)
            except ObjectNotFound:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"deployment {name} not registered (w2s deploy exit code "
                        f"{server.poll()}):\n{log.read_text()[-4000:]}"
                    ) from None
                await asyncio.sleep(1)


async def _scheduled_runs(deployment_id, timeout: float = 60) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
            if runs or time.monotonic() > deadline:
                return runs
            await asyncio.sleep(1)


def _relay(listen_port: int, target_port: int, stop: threading.Event) -> threading.Thread:
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
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

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


async def _ride_out_an_outage(flow_run_id, relay: tuple[int, int], stop: threading.Event, timeout: float = 900):
    """Let the run meet an unreachable MLflow server; once Prefect has scheduled a retry of the
    task that failed on it, restore the network path; return the run's final state and how many
    attempts that task took."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    by_name = TaskRunFilter(name=TaskRunFilterName(like_="start-tracking"))
    deadline = time.monotonic() + timeout
    restored = False
    async with get_client() as client:
        while time.monotonic() < deadline:
            if not restored:
                runs = await client.read_task_runs(task_run_filter=by_name)
                if any(r.state and r.state.name == "AwaitingRetry" for r in runs):
                    _relay(*relay, stop)
                    restored = True
            state = (await client.read_flow_run(flow_run_id)).state
            if state and state.is_final():
                (task_run,) = await client.read_task_runs(task_run_filter=by_name)
                return state, restored, task_run.run_count
            await asyncio.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout} s")


def test_cron_deployment_served_on_a_real_prefect_server_registers_on_a_real_mlflow_server(
    servers, s3, tmp_path, bundled_dir, monkeypatch, capsys, tiny_run
):
    # Auth is on: both servers refuse a request without credentials or with a wrong password.
    for url, auth in (
        (f"{servers['mlflow']}/api/2.0/mlflow/experiments/search?max_results=1", f"{MLFLOW_USER}:{MLFLOW_PASSWORD}"),
        (f"{servers['prefect']}/admin/version", PREFECT_AUTH),
    ):
        assert _status(url) == 401 and _status(url, auth.split(":")[0] + ":wrong") == 401, url
        assert _status(url, auth) == 200, url

    cfg = {**TINY_CONFIG, "promotion": {"floors": {}}}
    project = make_project(tmp_path / "proj", bundled_dir, cfg, warm=tiny_run.cache)
    from w2s.flows.deploy import prefect_yaml

    (project / "prefect.yaml").write_text(prefect_yaml())  # what `w2s init` writes beside params.yaml
    _use_s3_remote(project, s3)
    # Every client logs in: `w2s deploy` and the runs it serves through the environment, this
    # process's Prefect client through its settings (below) and MlflowClient through the environment.
    monkeypatch.setenv("PREFECT_API_URL", servers["prefect"])
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", PREFECT_AUTH)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    public_port = free_port()  # the served runs reach MLflow here, through a relay opened later
    relay, stop = (public_port, int(servers["mlflow"].rsplit(":", 1)[1])), threading.Event()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{public_port}")
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    deploy = _start([str(BIN / "w2s"), "deploy"], env, tmp_path / "deploy.log", cwd=project)
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    # This process's Prefect settings were read when an earlier test imported prefect: point its
    # client at the server, with the credentials, explicitly rather than through the environment.
    with temporary_settings({PREFECT_API_URL: servers["prefect"], PREFECT_API_AUTH_STRING: PREFECT_AUTH}):
        try:
            declared = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"][0]
            dep = asyncio.run(_deployment("w2s-retrain/w2s-retrain", deploy, tmp_path / "deploy.log"))
            assert [s.schedule.cron for s in dep.schedules] == [declared["schedules"][0]["cron"]]
            assert dep.schedules[0].schedule.timezone == "UTC" and dep.schedules[0].active
            assert dep.parameters["project_dir"] == str(project.resolve())

            # The server's scheduler turns the cron into upcoming runs: Mondays at 03:00 UTC.
            upcoming = asyncio.run(_scheduled_runs(dep.id))
            assert upcoming, (tmp_path / "deploy.log").read_text()[-3000:]
            assert all(r.expected_start_time.weekday() == 0 and r.expected_start_time.hour == 3 for r in upcoming)

            # A triggered run, whose MLflow server is unreachable when it starts (a transient fault):
            # Prefect retries the failed task with backoff and the run completes once it is back.
            from prefect.deployments import run_deployment

            run = run_deployment("w2s-retrain/w2s-retrain", timeout=0)
            state, restored, attempts = asyncio.run(_ride_out_an_outage(run.id, relay, stop))
            assert state.is_completed(), f"{state}\n{(tmp_path / 'deploy.log').read_text()[-4000:]}"
            assert restored and attempts >= 2
        finally:
            stop.set()
            _stop(deploy)

    from mlflow import MlflowClient

    client = MlflowClient(servers["mlflow"], registry_uri=servers["mlflow"])
    version = client.get_model_version_by_alias("w2s-test", "champion")
    assert version.version == "1"
    assert client.get_model_version_by_alias("w2s-test", "challenger").version == "1"
    for tag in LINEAGE_TAGS:
        assert version.tags.get(tag), tag
    assert version.tags["prefect_flow_run_id"] != "none"
    assert version.tags["data_in_dvc"] == "yes" and version.tags["weak_labels_in_dvc"] == "yes"
    assert version.tags["promotion_decision"] == "promoted"
    runs = client.search_runs([client.get_experiment_by_name("w2s").experiment_id])
    names = {r.info.run_name for r in runs}
    assert {"ingest", "weak-labels", "register", "evaluate", "promotion-gate"} <= names
    parent = client.get_run(
        version.tags.get("mlflow.parentRunId") or client.get_run(version.run_id).data.tags["mlflow.parentRunId"]
    )
    assert parent.info.status == "FINISHED" and "w2s_acc" in parent.data.metrics
    # proxied artifacts: the model's weights went through the server into its artifact store
    assert list(servers["artifacts"].rglob("model.safetensors"))
    assert not (project / ".w2s" / "mlflow.db").exists()  # nothing fell back to the local store
    if servers["databases"]["kind"] == "postgresql":  # the servers really kept their state there
        import psycopg2

        url = servers["databases"]
        with psycopg2.connect(url["mlflow"].replace("+psycopg2", "")) as conn, conn.cursor() as cur:
            cur.execute("select name, version from model_versions")
            assert cur.fetchall() == [("w2s-test", 1)]
        with psycopg2.connect(url["prefect"].replace("+asyncpg", "")) as conn, conn.cursor() as cur:
            cur.execute("select name from deployment")
            assert cur.fetchall() == [("w2s-retrain",)]

    # DVC: the data snapshot and the weak labels went to the S3 server, and the exact weak-label
    # file comes back from there by md5 once the local cache is gone.
    import boto3

    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket="dvc")["Contents"]}
    for md5 in (version.tags["weak_labels_md5"], version.tags["data_dvc_md5"]):
        assert f"w2s/files/md5/{md5[:2]}/{md5[2:]}" in keys, md5
    shutil.rmtree(project / ".dvc" / "cache")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers["mlflow"])
    monkeypatch.chdir(project)
    from w2s.cli.main import main
    from w2s.io import file_md5

    out = tmp_path / "recovered.parquet"
    assert main(["lineage", "w2s-test@champion", "--fetch-weak-labels", str(out)]) == 0
    assert "from the DVC remote 'team'" in capsys.readouterr().err
    assert file_md5(out) == version.tags["weak_labels_md5"]

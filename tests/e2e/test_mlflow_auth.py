"""Against a real `mlflow server` on loopback with basic auth on (the app
infra/mlflow/auth-entrypoint.sh configures):

- registry lookups: only "this model, version or alias does not exist" means absent; a refused
  login (a real 401) or a connection the server never accepts is an outage, exit code 3 with one
  line naming the server, never "no champion" or "has no alias";
- the team stack's worker login (infra/mlflow/worker-user.py, run as the compose job runs it): a
  user of its own, not an admin, that can do what the pipeline does and nothing more."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from w2s.cli.main import main

from conftest import BIN, REPO, free_port

USER, PASSWORD = "w2s-admin", "w2s-test-mlflow-password"
MODEL = "w2s-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An auth-enabled MLflow server (SQLite stores) holding w2s-test/1 as @challenger."""
    from test_servers import _start, _wait_http

    tmp = tmp_path_factory.mktemp("mlflow-auth")
    ini = tmp / "auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp / 'auth.db'}\n"
        f"admin_username = {USER}\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 900\n"
    )
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "w2s-test-secret"}
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
    cmd += ["--artifacts-destination", str(tmp / "artifacts")]
    proc = _start(cmd, env, tmp / "mlflow.log")
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait_http(f"{uri}/health", proc, tmp / "mlflow.log")
        from mlflow import MlflowClient

        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        os.environ.update(MLFLOW_TRACKING_USERNAME=USER, MLFLOW_TRACKING_PASSWORD=PASSWORD)
        try:
            client = MlflowClient(uri, registry_uri=uri)
            run = client.create_run(client.create_experiment("registry-errors"))
            client.create_registered_model(MODEL)
            version = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
            client.set_registered_model_alias(MODEL, "challenger", version.version)
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        yield uri
    finally:
        if proc.poll() is None:  # nothing to keep: no graceful shutdown to wait for
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture
def logged_in(server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """This process's MLflow client pointed at the server, with a password the test sets."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # mlflow.set_*_uri set module globals (and export the variables): put both back afterwards
    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(server)
    mlflow.set_registry_uri(server)

    def login(password: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)

    yield login
    tracking_utils._tracking_uri, registry_utils._registry_uri = saved


def test_only_a_missing_model_version_or_alias_reads_as_absent(logged_in):
    from w2s.errors import W2SError
    from w2s.ops import model_registry

    logged_in(PASSWORD)
    assert model_registry.alias_version(MODEL, "challenger") == "1"
    assert model_registry.alias_version(MODEL, "champion") is None  # the model exists, the alias does not
    assert model_registry.alias_version("no-such-model", "champion") is None
    assert model_registry.resolve_version(f"{MODEL}@challenger").version == "1"
    for ref, what in ((f"{MODEL}@champion", "alias @champion"), (f"{MODEL}/7", "version 7")):
        with pytest.raises(W2SError, match=f"registered model '{MODEL}' has no {what}"):
            model_registry.resolve_version(ref)


def test_a_refused_login_is_an_outage_naming_the_server_not_a_missing_alias(server, logged_in):
    from w2s.errors import ServiceUnavailable
    from w2s.ops import model_registry

    logged_in("wrong-password")
    with pytest.raises(ServiceUnavailable, match=rf"MLflow registry {server} did not answer .*401") as err:
        model_registry.alias_version(MODEL, "champion")
    assert "wrong-password" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ServiceUnavailable, match=rf"MLflow registry {server} did not answer"):
        model_registry.resolve_version(f"{MODEL}@challenger")


def test_a_registry_that_refuses_connections_is_an_outage(logged_in, monkeypatch):
    import mlflow

    from w2s.errors import ServiceUnavailable
    from w2s.ops import model_registry

    logged_in(PASSWORD)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connections are refused
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_registry_uri(dead)
    with pytest.raises(ServiceUnavailable, match=rf"MLflow registry {dead} did not answer"):
        model_registry.alias_version(MODEL, "champion")


@pytest.mark.parametrize(
    "argv",
    [
        ["rollback", "--set", f"registry.model_name={MODEL}"],
        ["predict", f"{MODEL}@challenger", "--input", "new.csv", "--output", "out.parquet"],
    ],
    ids=["rollback", "predict"],
)
def test_the_cli_exits_3_in_one_line_when_the_registry_refuses_the_login(server, logged_in, capfd, tmp_path, argv):
    logged_in("wrong-password")
    (tmp_path / "new.csv").write_text("text\nhello\n")
    code = main(argv)
    err = capfd.readouterr().err
    assert code == 3, err
    assert err.count("\n") == 1 and err.startswith(f"error: MLflow registry {server} did not answer"), err
    assert "401" in err and "has no" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"], "nothing written"
    # and the alias it asked about is still where it was
    logged_in(PASSWORD)
    from w2s.ops import model_registry

    assert model_registry.alias_version(MODEL, "challenger") == "1"


def test_the_server_really_requires_the_password(server):
    """The 401s above are the server's: without credentials it refuses, with them it answers."""
    from test_servers import _status

    url = f"{server}/api/2.0/mlflow/registered-models/get?name={MODEL}"
    assert _status(url) == 401 and _status(url, f"{USER}:wrong-password") == 401
    assert _status(url, f"{USER}:{PASSWORD}") == 200


WORKER, WORKER_PASSWORD = "w2s-worker", "w2s-test-worker-password"


def _worker_user(server: str, **env: str) -> subprocess.CompletedProcess[str]:
    """infra/mlflow/worker-user.py as the compose job runs it: as the admin, against the server."""
    base = {**os.environ, "MLFLOW_TRACKING_URI": server, "MLFLOW_TRACKING_USERNAME": USER}
    base |= {"MLFLOW_TRACKING_PASSWORD": PASSWORD, "MLFLOW_WORKER_USER": WORKER}
    base |= {"MLFLOW_WORKER_PASSWORD": WORKER_PASSWORD, "MLFLOW_WORKER_MODELS": "w2s-strong"}
    script = REPO / "infra" / "mlflow" / "worker-user.py"
    return subprocess.run([sys.executable, str(script)], env={**base, **env}, capture_output=True, text=True)


def test_the_worker_gets_its_own_user_that_can_run_the_pipeline_and_nothing_more(server, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient
    from test_servers import _status

    done = _worker_user(server)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _worker_user(server).returncode == 0, "idempotent: a second start of the stack runs it again"
    refused = _worker_user(server, MLFLOW_WORKER_USER=USER)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        "error: MLFLOW_WORKER_USER is the admin account; give the worker a user of its own"
    ]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    assert AuthServiceClient(server).get_user(WORKER).is_admin is False

    # as the worker: what a pipeline run, a promotion and gc do
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", WORKER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", WORKER_PASSWORD)
    worker = MlflowClient(server, registry_uri=server)
    experiment = worker.get_experiment_by_name("w2s")
    run = worker.create_run(experiment.experiment_id)
    worker.log_metric(run.info.run_id, "w2s_acc", 0.9)
    version = worker.create_model_version("w2s-strong", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    worker.set_registered_model_alias("w2s-strong", "challenger", version.version)
    worker.set_model_version_tag("w2s-strong", version.version, "promotion_decision", "promoted")
    worker.delete_model_version("w2s-strong", version.version)  # w2s gc
    worker.set_terminated(run.info.run_id)
    # ... and not what an admin does: manage users, or move another team's aliases
    for forbidden in (
        lambda: AuthServiceClient(server).create_user("intruder", "intruder-password-123"),
        lambda: worker.set_registered_model_alias(MODEL, "champion", "1"),
    ):
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|Permission denied|403"):
            forbidden()
    url = f"{server}/api/2.0/mlflow/registered-models/get?name=w2s-strong"
    assert _status(url, f"{WORKER}:{WORKER_PASSWORD}") == 200 and _status(url, f"{WORKER}:wrong") == 401

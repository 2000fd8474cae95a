"""Serve the deployments declared in `prefect.yaml` with their schedules (`w2s deploy`).

`prefect.yaml` stays the one declaration: `prefect deploy` reads it for a worker-based setup,
and `serve` here reads the same name, entrypoint, schedules, parameters and tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from w2s.errors import ConfigError

# The flows a deployment may name, by entrypoint (an import path, so it resolves in a project
# outside this repository; the file path is the older spelling).
FLOWS = {
    "w2s.flows.retrain:retrain": ("w2s.flows.retrain", "retrain"),
    "flows/retrain.py:retrain": ("w2s.flows.retrain", "retrain"),
}


def prefect_yaml() -> str:
    """The prefect.yaml `w2s init` writes into a new project (this repository's is the same text)."""
    return PREFECT_YAML


PREFECT_YAML = """\
# Prefect deployments of w2s. `w2s deploy` serves the ones below from this file (no worker
# needed); a team running the worker in infra/ can instead `prefect deploy --name w2s-retrain`
# against the `w2s-pool` process work pool (infra/).
name: w2s
prefect-version: 3.9.1

pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ $W2S_PROJECT_DIR }}"

deployments:
  - name: w2s-retrain
    description: >-
      Weekly retraining: snapshot the data with DVC, run the weak-to-strong pipeline on the
      project's params.yaml, score challenger and champion on the same evaluation set, and move
      the champion alias only if the promotion gate passes.
    entrypoint: w2s.flows.retrain:retrain
    tags: [w2s, retrain]
    parameters:
      overrides: []          # `key=value` config overrides for every scheduled run, e.g. [strong.epochs=3]
      config_file: null      # a config file that replaces params.yaml for the scheduled runs
    schedules:
      - cron: "0 3 * * 1"
        timezone: UTC
        active: true
    work_pool:
      name: w2s-pool
      work_queue_name: default
"""


def find_prefect_yaml(project_root: Path) -> Path:
    """The project's prefect.yaml (`w2s init` writes one; this repository ships one)."""
    path = project_root / "prefect.yaml"
    if not path.is_file():
        raise ConfigError(f"no prefect.yaml in {project_root}: `w2s init` writes one, or copy this repository's")
    return path


def deployment_spec(path: Path, name: str) -> dict[str, Any]:
    """The named deployment of a prefect.yaml, checked for what serving needs."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    deployments = {d.get("name"): d for d in doc.get("deployments") or []}
    if name not in deployments:
        raise ConfigError(f"{path} declares no deployment '{name}' (it has: {', '.join(map(str, deployments))})")
    spec = deployments[name]
    if spec.get("entrypoint") not in FLOWS:
        raise ConfigError(
            f"{path}: deployment '{name}' entrypoint '{spec.get('entrypoint')}' is not one of {', '.join(FLOWS)}"
        )
    return spec


def schedules(spec: dict[str, Any]) -> list:
    """Prefect schedule objects for the spec's `schedules` (cron, interval or rrule)."""
    from datetime import timedelta

    from prefect.schedules import Cron, Interval, RRule

    out = []
    for s in spec.get("schedules") or []:
        tz = s.get("timezone")
        active = s.get("active", True)
        if "cron" in s:
            out.append(Cron(s["cron"], timezone=tz, active=active))
        elif "interval" in s:
            out.append(Interval(timedelta(seconds=float(s["interval"])), timezone=tz, active=active))
        elif "rrule" in s:
            out.append(RRule(s["rrule"], timezone=tz, active=active))
        else:
            raise ConfigError(f"deployment '{spec['name']}': a schedule needs cron, interval or rrule: {s}")
    return out


def serve(spec: dict[str, Any], project_dir: str) -> None:
    """Register the deployment with its schedules and execute its runs until interrupted."""
    import importlib

    module, attr = FLOWS[spec["entrypoint"]]
    flow = getattr(importlib.import_module(module), attr)
    parameters = {**(spec.get("parameters") or {}), "project_dir": project_dir}
    flow.serve(
        name=spec["name"],
        schedules=schedules(spec),
        parameters=parameters,
        description=spec.get("description"),
        tags=spec.get("tags"),
    )

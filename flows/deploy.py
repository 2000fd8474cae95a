"""Serve the deployments declared in `prefect.yaml` with their schedules (`w2s deploy`).

`prefect.yaml` stays the one declaration: `prefect deploy` reads it for a worker-based setup,
and `serve` here reads the same name, entrypoint, schedules, parameters and tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from w2s.errors import ConfigError

FLOWS = {"flows/retrain.py:retrain": ("w2s.flows.retrain", "retrain")}


def find_prefect_yaml(project_root: Path) -> Path:
    """The project's own prefect.yaml, else the one shipped beside the flows."""
    for candidate in (project_root / "prefect.yaml", Path(__file__).resolve().parents[1] / "prefect.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no prefect.yaml in {project_root} or beside the installed flows")


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

"""Scheduled retraining: snapshot the data, run the pipeline, gate the challenger.

The `champion` alias moves only when the gate passes; a failed pipeline or gate raises before
any alias is touched, and a rejection is a completed run in a state named `Rejected` (its
decision logged to MLflow, published as a Prefect artifact, and an event an automation can act on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import Completed

from w2s.config import load_config
from w2s.errors import ConfigError
from w2s.flows.pipeline import pipeline
from w2s.project import Project
from w2s.tasks import promotion


@flow(name="w2s-retrain", log_prints=True, validate_parameters=False)
def retrain(
    project_dir: str | None = None, overrides: list[str] | None = None, config_file: str | None = None
) -> dict[str, Any]:
    """Retrain on the project's current data and params.yaml (or `config_file`, a YAML file that
    replaces it), plus `key=value` overrides."""
    project = Project.discover(project_dir)
    path = config_file or (project.params_file if project.params_file.is_file() else None)
    cfg = load_config(path, overrides)
    if not cfg.registry.enabled:
        raise ConfigError("retrain registers a challenger to gate: registry.enabled must be true")
    config = cfg.model_dump(mode="json")
    root = str(project.root)
    snapshot = promotion.snapshot_data(root, config)
    result = pipeline(config=config, project_dir=root)
    if result.model is None:  # registry.enabled was checked above: the flow always registers here
        raise RuntimeError("the pipeline registered no challenger")
    decision = promotion.gate(root, config, result.model, str(Path(result.run_dir) / "splits.parquet"))
    out = {
        "snapshot": snapshot,
        "metrics": result.metrics,
        "model": result.model,
        "mlflow_run_id": result.mlflow_run_id,
        "run_dir": result.run_dir,
        "decision": decision,
    }
    if decision["promoted"] or decision.get("unchanged"):
        return out
    # Still a completed run (nothing failed), but not one that reads "Completed" in the UI: the
    # state is named Rejected, and Prefect emits `prefect.flow-run.Rejected`, which an automation
    # can turn into a notification.
    message = f"{decision['model']}/{decision['challenger']} rejected: {'; '.join(decision['reasons'])}"
    # Prefect makes a returned state the run's final state and hands its data to the caller
    return Completed(name=REJECTED, message=message, data=out)  # type: ignore[return-value]


REJECTED = "Rejected"  # the state name of a retrain whose challenger the gate rejected

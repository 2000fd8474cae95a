"""Gives the training worker its own MLflow login, not the admin's: creates the user (or resets
its password to MLFLOW_WORKER_PASSWORD, so that rotating it in infra/.env takes effect), and grants
it MANAGE on the experiment it logs to and on the registered models it registers, promotes and
collects (MLflow's basic-auth app lets any user READ everything else and create new experiments
and models, which their creator then manages). It cannot manage users or change permissions.

Idempotent; run as the admin (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) against
MLFLOW_TRACKING_URI once the server answers: the compose service `mlflow-worker-user` does it on
every start of the stack; infra/README.md shows the same for Kubernetes.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    user, password = os.environ["MLFLOW_WORKER_USER"], os.environ["MLFLOW_WORKER_PASSWORD"]
    experiment = os.environ.get("MLFLOW_WORKER_EXPERIMENT", "w2s")
    models = os.environ.get("MLFLOW_WORKER_MODELS", "w2s-strong").split()
    if user == os.environ.get("MLFLOW_TRACKING_USERNAME"):
        print("error: MLFLOW_WORKER_USER is the admin account; give the worker a user of its own", file=sys.stderr)
        return 1

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    auth = AuthServiceClient(uri)
    try:
        auth.get_user(user)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(user, password)
        print(f"created MLflow user {user}")
    else:
        auth.update_user_password(user, password)
        print(f"MLflow user {user} exists; password set")
    client = MlflowClient(uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    grant(auth, user, "experiment", experiment_id)
    for name in models:
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            client.create_registered_model(name)
        grant(auth, user, "registered_model", name)
    print(f"{user}: MANAGE on experiment {experiment} ({experiment_id}) and registered models {', '.join(models)}")
    return 0


def grant(auth, user: str, resource_type: str, resource_id: str) -> None:
    """MANAGE on one resource, whatever the user held on it before (a grant is not an upsert)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(user, resource_type, resource_id, "MANAGE")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(user, resource_type, resource_id)
        auth.grant_user_permission(user, resource_type, resource_id, "MANAGE")


if __name__ == "__main__":
    sys.exit(main())

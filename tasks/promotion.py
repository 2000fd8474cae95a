"""Tasks of the retrain flow: snapshot the data in DVC, and gate the challenger."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from w2s.config import Config
from w2s.ops import promotion, versioning
from w2s.ops.lineage import snapshot_targets
from w2s.project import Project
from w2s.tasks.promotion_lock import promotion_serialised
from w2s.tasks.retry import RETRY


@task(name="snapshot-data", cache_policy=NO_CACHE, **RETRY)
def snapshot_data(project_dir: str, config: dict) -> list[dict]:
    """`dvc add` + `dvc push` what the run will read, so its data version can be fetched later."""
    project = Project.discover(project_dir)
    if not versioning.is_dvc_repo(project):
        get_run_logger().warning("not a DVC repository: the data of this retrain is not versioned")
        return []
    done = []
    for target in snapshot_targets(Config.model_validate(config), project):
        v = versioning.add_and_push(project, target)
        get_run_logger().info(
            "data snapshot %s: md5 %s%s", v.path, v.md5, f", pushed to '{v.remote}'" if v.remote else ""
        )
        done.append(v.__dict__)
    return done


@task(name="promotion-gate", cache_policy=NO_CACHE)  # not retried: it moves an alias
def gate(project_dir: str, config: dict, model: dict, splits_path: str) -> dict:
    """Score challenger and champion on the same set, apply the gate, log and publish the decision."""
    project = Project.discover(project_dir)
    cfg = Config.model_validate(config)
    decision = promotion.already_champion(cfg, model["name"], model["version"]) or promotion.promote(
        cfg, project, f"{model['name']}/{model['version']}", Path(splits_path), promotion_serialised
    )
    create_markdown_artifact(key="promotion-decision", markdown=decision.markdown(), description=decision.summary())
    get_run_logger().info(decision.summary())
    return decision.as_dict()

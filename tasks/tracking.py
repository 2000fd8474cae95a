"""Tasks that open and close the MLflow parent run of a pipeline run."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from w2s.config import Config
from w2s.ops import activity, tracking
from w2s.ops.determinism import determinism_facts
from w2s.ops.lineage import git_commit, method_name, params_hash
from w2s.project import Project
from w2s.tasks.retry import RETRY


@task(name="start-tracking", cache_policy=NO_CACHE, **RETRY)
def start(
    project_dir: str, config: dict, run_name: str, flow_run_id: str | None, extra_tags: dict | None = None
) -> tuple[str, dict]:
    """Create the parent run with params and the lineage tags known before training (and
    `extra_tags`, e.g. a sweep's declaration); first mark KILLED the runs that processes killed on
    this host left RUNNING."""
    project = Project.discover(project_dir)
    tracking.configure(project)
    cfg = Config.model_validate(config)
    exp_id = tracking.experiment_id(project, cfg.tracking.experiment)
    activity.reap_dead_runs([exp_id])
    tags = {
        "git_commit": git_commit(project.root),
        "params_hash": params_hash(cfg),
        "prefect_flow_run_id": flow_run_id or "none",
        "method": method_name(cfg),
        **(extra_tags or {}),
    }
    run = tracking.start_run(exp_id, run_name, tags={**tags, **activity.process_tags()})
    run.params(config)
    run.dict(config, "config.json")  # the exact config, typed, for `w2s reproduce`
    run.tags(determinism_facts())
    return run.run_id, tags


@task(name="finish-tracking", cache_policy=NO_CACHE, **RETRY)
def finish(run_id: str, tags: dict, ok: bool) -> None:
    """Record the final lineage tags and close the parent run as FINISHED or FAILED."""
    tracking.RunLog(run_id).tags(tags)
    tracking.end_run(run_id, ok)

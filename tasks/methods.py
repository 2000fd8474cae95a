"""Tasks for W2S methods that transform the weak labels before the student trains."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from w2s import steps, tracking, versioning
from w2s.bootstrap import bootstrap_labels
from w2s.refs import SplitsRef, TableRef


@task(name="bootstrap", cache_policy=NO_CACHE)
def bootstrap(ctx: RunContext, splits: SplitsRef, table: TableRef, labels: dict) -> dict:
    """Weak -> intermediate students -> labels for the final student; each label file is
    gated, DVC-versioned and logged."""
    project = ctx.project
    with tracking.stage_run(ctx.parent_run_id, "bootstrap") as run:
        chain = bootstrap_labels(splits, ctx.cfg, ctx.cache, table, labels, project.weak_labels_dir)
        run.params({"bootstrap": ctx.cfg.bootstrap.model_dump(mode="json")})
        for i, (ref, stage_labels) in enumerate(chain, start=1):
            test = steps.predictions(ref, "test")
            run.metrics({f"stage{i}_best_step": ref.info["best_step"], f"stage{i}_test_rows": len(test)})
            run.tags({f"stage{i}_labels_md5": stage_labels["md5"], f"stage{i}_cache_key": ref.key})
            if versioning.is_dvc_repo(project):
                versioning.add_and_push(project, project.root / stage_labels["path"])
    final = chain[-1][1]
    get_run_logger().info("bootstrap chain of %d intermediate(s); final labels md5 %s",
                          len(chain), final["md5"][:12])
    return final

"""Tasks for W2S methods that transform the weak labels before the student trains."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from w2s import steps, tracking, versioning
from w2s.bootstrap import bootstrap_labels
from w2s.refs import SplitsRef, TableRef
from w2s.selection import select_weak as select_weak_model


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


@task(name="select-weak", cache_policy=NO_CACHE)
def select_weak(ctx: RunContext, splits: SplitsRef, table: TableRef) -> dict:
    """Pick the weak supervisor with the lowest predicted strong error; log the whole table."""
    from prefect.artifacts import create_table_artifact

    with tracking.stage_run(ctx.parent_run_id, "select-weak") as run:
        chosen, candidates = select_weak_model(splits, table, ctx.cfg, ctx.cache, ctx.out)
        rows = [c.row() for c in candidates]
        run.dict(rows, "weak_selection.json")
        for row in rows:
            run.metrics({f"{row['candidate']}.{k}": row[k]
                         for k in ("err_w_cv", "misfit", "predicted_strong_err")})
        run.tags({"chosen_weak": chosen.name})
    create_table_artifact(rows, key="w2s-weak-selection",
                          description=f"weak-model selection: chose {chosen.name}")
    get_run_logger().info("weak-model selection chose %s (predicted strong error %.4f)",
                          chosen.name, chosen.predicted_err)
    return {"chosen": chosen.name, "candidates": rows}

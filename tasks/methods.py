"""Tasks for W2S methods that transform the weak labels before the student trains."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s import steps, tracking, versioning
from w2s.bootstrap import bootstrap_labels
from w2s.refine.run import refine_supervisor
from w2s.refs import ModelRef, SplitsRef, TableRef
from w2s.selection import select_weak as select_weak_model


@task(name="bootstrap", cache_policy=NO_CACHE, **RETRY)
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


@task(name="select-weak", cache_policy=NO_CACHE, **RETRY)
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


@task(name="refine-labels", cache_policy=NO_CACHE, **RETRY)
def refine(ctx: RunContext, splits: SplitsRef, table: TableRef, weak: ModelRef) -> tuple[dict, ModelRef]:
    """Refine the weak labels with the configured method (on blind splits); write, gate and
    DVC-version the student's label file; log what the method did."""
    project = ctx.project
    cfg = ctx.cfg
    with tracking.stage_run(ctx.parent_run_id, f"refine-{cfg.method}") as run:
        ref = refine_supervisor(splits, weak, cfg, ctx.cache)
        path = project.weak_labels_dir / f"{ref.key[:16]}-{cfg.method}.parquet"
        labels, report = steps.make_weak_labels(splits, ref, table, path)
        run.params({"method": cfg.method, **{k: v for k, v in ref.info.items() if isinstance(v, (str, int))}})
        run.metrics({k: v for k, v in ref.info.items() if isinstance(v, float)})
        run.dict(ref.info, "refine_info.json")
        run.dict(report.as_dict(), "gate_student_labels.json")
        run.tags({"cache_key": ref.key, "reused": ref.reused, "student_labels_md5": labels["md5"]})
        if versioning.is_dvc_repo(project):
            labels["dvc"] = versioning.add_and_push(project, path).__dict__
    get_run_logger().info("%s labels %s (changed %.1f%% of transfer labels)%s", cfg.method, labels["md5"][:12],
                          100 * ref.info.get("changed_frac_transfer", 0.0),
                          "; reused from cache" if ref.reused else "")
    return labels, ref

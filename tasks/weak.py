"""Tasks: train the weak supervisor; write, gate and DVC-version its weak labels."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext, gate_artifact
from tasks.retry import RETRY
from w2s import steps, tracking, versioning
from w2s.refs import ModelRef, SplitsRef, TableRef


@task(name="weak-supervisor", cache_policy=NO_CACHE, **RETRY)
def train_weak(ctx: RunContext, splits: SplitsRef) -> tuple[ModelRef, str]:
    """Train (or reuse, by content hash) the weak model; return it and its MLflow run id."""
    log = get_run_logger()
    with tracking.stage_run(ctx.parent_run_id, "weak") as run:
        ref = steps.train_weak(splits, ctx.cfg, ctx.cache)
        run.params({"weak": ctx.cfg.weak.model_dump(mode="json")})
        run.tags({"cache_key": ref.key, "reused": ref.reused})
        weak_test = steps.predictions(ref, "test")
        run.metrics({"train_seconds": ref.info.get("seconds"), "n_predictions": len(weak_test)})
    log.info("weak model %s %s", ref.key[:12], "reused from cache" if ref.reused else "trained")
    return ref, run.run_id


@task(name="weak-labels", cache_policy=NO_CACHE, **RETRY)
def weak_labels(ctx: RunContext, splits: SplitsRef, weak: ModelRef, table: TableRef) -> dict:
    """Write the weak-label dataset, gate it with GX, then `dvc add` + `dvc push` it."""
    project = ctx.project
    path = project.weak_labels_dir / f"{weak.key[:16]}.parquet"
    with tracking.stage_run(ctx.parent_run_id, "weak-labels") as run:
        with gate_artifact(run, "gate_weak_labels.json"):
            sidecar, report = steps.make_weak_labels(splits, weak, table, path)
        run.dict(report.as_dict(), "gate_weak_labels.json")
        versioned = None
        if versioning.is_dvc_repo(project):
            versioned = versioning.add_and_push(project, path)
            if versioned.md5 != sidecar["md5"]:
                raise RuntimeError(f"DVC recorded md5 {versioned.md5} for {path.name}, "
                                   f"but the file hashes to {sidecar['md5']}")
        sidecar["dvc"] = None if versioned is None else versioned.__dict__
        run.tags({"weak_labels_md5": sidecar["md5"]})
        run.artifact(Path(path).with_suffix(".json"))
    get_run_logger().info("weak labels %s (md5 %s)%s", path.relative_to(project.root),
                          sidecar["md5"][:12], " pushed to the DVC remote" if versioned else "")
    return sidecar

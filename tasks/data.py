"""Tasks: ingest the data source, gate it, split it."""

from __future__ import annotations

from dataclasses import asdict, replace

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext, gate_artifact
from tasks.retry import RETRY
from w2s import steps, tracking
from w2s.lineage import data_version
from w2s.refs import SplitsRef, TableRef


@task(name="ingest", cache_policy=NO_CACHE, **RETRY)
def ingest(ctx: RunContext) -> TableRef:
    """Resolve the configured source to the canonical table."""
    with tracking.stage_run(ctx.parent_run_id, "ingest") as run:
        ref = steps.ingest(ctx.cfg, ctx.project, ctx.out)
        run.params({"source": ref.source})
        run.metrics({**ref.stats, "num_classes": len(ref.label_names)})
        dvc = data_version(ctx.cfg, ctx.project)
        run.tags({"data_md5": ref.data_md5, **dvc})
        ref = replace(ref, source={**ref.source, "dvc": dvc})
    get_run_logger().info("ingested %d rows, %d classes (data md5 %s)", ref.rows,
                          len(ref.label_names), ref.data_md5[:12])
    return ref


@task(name="validate-data", cache_policy=NO_CACHE, **RETRY)
def validate(ctx: RunContext, table: TableRef) -> dict:
    """Great Expectations gate on the raw table; a failure stops the flow here."""
    with tracking.stage_run(ctx.parent_run_id, "validate-data") as run:
        with gate_artifact(run, "gate_raw_table.json"):
            report = steps.validate_table(table, ctx.cfg)
        run.dict(report.as_dict(), "gate_raw_table.json")
        run.metrics({"expectations_evaluated": report.evaluated})
    get_run_logger().info("raw-data gate passed (%d expectations)", report.evaluated)
    return report.as_dict()


@task(name="split", cache_policy=NO_CACHE, **RETRY)
def split(ctx: RunContext, table: TableRef) -> SplitsRef:
    """Deterministic splits, gated on test/train text overlap."""
    with tracking.stage_run(ctx.parent_run_id, "split") as run:
        with gate_artifact(run, "gate_split_overlap.json"):
            ref, report = steps.make_splits(table, ctx.cfg, ctx.out)
        run.metrics({f"n_{k}": v for k, v in ref.counts.items()})
        run.dict(report.as_dict(), "gate_split_overlap.json")
        run.dict(asdict(ref), "splits.json")
    get_run_logger().info("splits %s", ref.counts)
    return ref

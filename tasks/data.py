"""Tasks: ingest the data source, gate it, split it."""

from __future__ import annotations

from dataclasses import asdict, replace

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.context import RunContext
from tasks.retry import RETRY
from w2s.config import Config
from w2s.core.data.split import TRAINED_ROWS_FILE, trained_rows
from w2s.core.refs import SplitsRef, TableRef
from w2s.ops import datasets, tracking
from w2s.ops.lineage import data_version


@task(name="ingest", cache_policy=NO_CACHE, **RETRY)
def ingest(ctx: RunContext, cfg: Config) -> TableRef:
    """Resolve the configured source to the canonical table."""
    with tracking.stage_run(ctx.parent_run_id, "ingest") as run:
        ref = ctx.steps(run).ingest(cfg)
        run.params({"source": ref.source})
        run.metrics({**ref.stats, "num_classes": len(ref.label_names)})
        dvc = data_version(cfg, ctx.project)
        run.tags({"data_md5": ref.data_md5, **dvc})
        raw = [datasets.raw_data(ctx.project, ref, dvc)]
        datasets.log_inputs(raw, run.run_id, ctx.parent_run_id)
        ref = replace(ref, source={**ref.source, "dvc": dvc})
    get_run_logger().info(
        "ingested %d rows, %d classes (data md5 %s)", ref.rows, len(ref.label_names), ref.data_md5[:12]
    )
    return ref


@task(name="validate-data", cache_policy=NO_CACHE, **RETRY)
def validate(ctx: RunContext, cfg: Config, table: TableRef) -> dict:
    """Great Expectations gate on the raw table; a failure stops the flow here."""
    with tracking.stage_run(ctx.parent_run_id, "validate-data") as run:
        report = ctx.steps(run).validate(cfg, table)
        run.metrics({"expectations_evaluated": report.evaluated})
    get_run_logger().info("raw-data gate passed (%d expectations)", report.evaluated)
    return report.as_dict()


@task(name="split", cache_policy=NO_CACHE, **RETRY)
def split(ctx: RunContext, cfg: Config, table: TableRef) -> SplitsRef:
    """Deterministic splits, gated on test/train text overlap."""
    with tracking.stage_run(ctx.parent_run_id, "split") as run:
        ref = ctx.steps(run).split(cfg, table)
        run.metrics({f"n_{k}": v for k, v in ref.counts.items()})
        run.dict(asdict(ref), "splits.json")
        record = [datasets.splits(ctx.project, ref)]
        datasets.log_inputs(record, run.run_id, ctx.parent_run_id)
        # on the pipeline run, where a later promotion gate looks for the rows this model saw
        tracking.RunLog(ctx.parent_run_id).table(trained_rows(pd.read_parquet(ref.path)), TRAINED_ROWS_FILE)
    get_run_logger().info("splits %s", ref.counts)
    return ref

"""The weak-to-strong pipeline as one Prefect flow.

ingest -> validate -> split -> [select weak] -> weak -> weak labels (GX + DVC) -> [bootstrap |
refine (GX + DVC)] -> student, ceiling -> evaluate -> register. Tasks exchange paths, hashes and small dataclasses only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, runtime

from tasks import data, evaluate, methods, strong, tracking, weak
from tasks.context import RunContext
from w2s.config import Config, stable_hash
from w2s.project import Project
from w2s.refine.run import REFINED_METHODS
from w2s.selection import with_weak


def new_run_name(config: dict) -> str:
    """Sortable, unique-enough run folder name: UTC time plus a short config hash."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return f"{stamp}-{stable_hash(config)[:6]}"


@flow(name="w2s-pipeline", log_prints=True, validate_parameters=False)
def pipeline(config: dict[str, Any], project_dir: str) -> dict[str, Any]:
    """Run the whole pipeline for a validated config; return metrics, lineage and the model."""
    cfg = Config.model_validate(config)
    run_name = new_run_name(config)
    run_dir = Project(Path(project_dir)).runs_dir / run_name
    parent_id, tags = tracking.start(project_dir, config, run_name, runtime.flow_run.id)
    run_dir.mkdir(parents=True, exist_ok=True)  # after tracking is reachable: a dead server leaves nothing
    ctx = RunContext(project_dir, str(run_dir), parent_id, config)
    ok = False
    try:
        table = data.ingest(ctx)
        tags.update(data_md5=table.data_md5, **table.source["dvc"])
        data.validate(ctx, table)
        splits = data.split(ctx, table)
        selection = None
        if cfg.selection.candidates:
            selection = methods.select_weak(ctx, splits, table)
            cfg = with_weak(cfg, selection["chosen"])
            ctx = replace(ctx, config=cfg.model_dump(mode="json"))
        weak_ref, weak_run_id = weak.train_weak(ctx, splits)
        labels = weak.weak_labels(ctx, splits, weak_ref, table)
        tags.update(weak_labels_md5=labels["md5"], weak_model_run_id=weak_run_id,
                    weak_labels_path=Path(labels["path"]).resolve().relative_to(Path(project_dir).resolve()).as_posix(),
                    weak_labels_in_dvc="yes" if labels["dvc"] else "no (not a DVC repository)")
        student_labels, refined = labels, None
        if cfg.method == "bootstrap":
            student_labels = methods.bootstrap(ctx, splits, table, labels)
        elif cfg.method in REFINED_METHODS:
            student_labels, refined = methods.refine(ctx, splits, table, weak_ref)
        tags["student_labels_md5"] = student_labels["md5"]
        student = strong.train_strong(ctx, splits, "w2s", student_labels)
        ceiling = strong.train_strong(ctx, splits, "ceiling")
        metrics = evaluate.evaluate(ctx, splits, weak_ref, student, ceiling, refined)
        model = None
        if cfg.registry.enabled:
            model = evaluate.register(ctx, student, splits.label_names, tags)
        ok = True
    finally:
        tracking.finish(parent_id, tags, ok)
    return {
        "run_name": run_name, "run_dir": str(run_dir), "mlflow_run_id": parent_id,
        "metrics": metrics, "tags": tags, "model": model, "weak_labels": labels,
        "label_names": splits.label_names, "counts": splits.counts,
        "reused": {"weak": weak_ref.reused, "w2s": student.reused, "ceiling": ceiling.reused},
        "early_stopping": cfg.strong.early_stopping, "selection": selection, "method": cfg.method,
        "student_labels": student_labels,
    }

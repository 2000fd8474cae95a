"""Verbs that answer for a registered version: `lineage` (what made it, and its exact inputs
back) and `reproduce` (run it again from its record and compare)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from w2s.cli.common import start_flows


def _print_lineage(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"lineage of {info['model']} ({', '.join('@' + a for a in info['aliases']) or 'no alias'})",
        title_justify="left",
        show_header=False,
    )
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    d, w = info["data"], info["weak_labels"]
    rows = [
        ("git commit", info["git_commit"]),
        ("params hash", info["params_hash"]),
        ("method", info["method"]),
        ("raw data", f"{d['files']} (table md5 {d['table_md5']})"),
        ("data in DVC", f"{d['dvc_file']} md5 {d['dvc_md5']} — versioned: {d['in_dvc']}"),
        ("weak labels", f"{w['path']} md5 {w['md5']} — versioned: {w['in_dvc']}"),
        *[(f"  fetch ({k})", v) for k, v in w["fetch"].items()],
        ("student labels md5", info["student_labels_md5"]),
        ("weak model", f"{info['weak_model']['kind']} (MLflow run {info['weak_model']['run_id']})"),
        ("pipeline run", f"MLflow {info['mlflow_run_id']}, Prefect flow run {info['prefect_flow_run_id']}"),
        *[
            (f"metric {k}", f"{v:.4f}")
            for k, v in sorted(info["metrics"].items())
            if k in ("weak_acc", "w2s_acc", "ceiling_acc", "pgr", "w2s_auroc", "pgr_auroc")
        ],
        *[(k.replace("_", " "), v) for k, v in info["promotion"].items()],
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    Console(soft_wrap=True).print(table)


def cmd_lineage(args: argparse.Namespace) -> int:
    """Print the chain behind a model version; optionally fetch its exact weak labels or data."""
    from w2s.ops import lineage, tracking
    from w2s.project import Project

    project = Project.discover()
    tracking.configure(project)
    info = lineage.lineage(args.model, project)
    if args.fetch_weak_labels:
        dest = Path(args.fetch_weak_labels)
        where = lineage.fetch_weak_labels(info, project, dest)
        print(
            f"weak labels md5 {info['weak_labels']['md5']} -> {dest} (from the DVC {where}, md5 verified)",
            file=sys.stderr,
        )
    if args.fetch_data:
        files = lineage.fetch_data(info, project, Path(args.fetch_data))
        print(f"data {info['data']['dvc_md5']} -> {args.fetch_data}: {', '.join(files)}", file=sys.stderr)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_lineage(info)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Re-run a version's recorded config on its recorded data and compare the metrics."""
    from w2s.ops import lineage, reproduce, tracking
    from w2s.project import Project

    project = Project.discover()
    uri = tracking.configure(project)
    info = lineage.lineage(args.model, project)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    scratch = project.state / "reproduce" / f"{info['model'].replace('/', '-v')}-{stamp}"
    config = reproduce.prepare(info, project, scratch)
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri  # the reproduction is recorded beside the original
    try:
        start_flows()
        from w2s.flows.pipeline import pipeline

        result = pipeline(config=config, project_dir=str(scratch))
        tracking.RunLog(result.mlflow_run_id).tags({"reproduces": info["model"]})
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    recorded = {
        "metrics": info["metrics"],
        "tags": {
            "data_md5": info["data"]["table_md5"],
            "weak_labels_md5": info["weak_labels"]["md5"],
            "student_labels_md5": info["student_labels_md5"],
        },
    }
    rows, ok = reproduce.compare(recorded, {"metrics": result.metrics, "tags": result.tags}, args.tolerance)
    if args.json:
        print(
            json.dumps(
                {"model": info["model"], "reproduction_run_id": result.mlflow_run_id, "identical": ok, "rows": rows},
                indent=2,
                default=str,
            )
        )
    else:
        _print_comparison(info["model"], rows, ok, result.mlflow_run_id)
    return 0 if ok else 1


def _print_comparison(model: str, rows: list[dict], ok: bool, run_id: str) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(v: Any) -> str:
        return "—" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v)[:16])

    table = Table(title=f"reproduction of {model} (MLflow run {run_id})", title_justify="left")
    for col in ("", "recorded", "reproduced", "Δ", "match"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            fmt(r["recorded"]),
            fmt(r["reproduced"]),
            "" if r["delta"] is None else f"{r['delta']:+.2e}",
            "yes" if r["ok"] else "NO",
        )
    Console(soft_wrap=True).print(table)
    print("identical" if ok else "reproduction DIFFERS from the recorded run")


def add_lineage(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `lineage` verb."""
    li = sub.add_parser(
        "lineage",
        formatter_class=fmt,
        help="what made a registered model version",
        description="Print the chain behind a model version: git commit, params and their hash, raw-data md5 "
        "and DVC version, weak-label md5 and how to fetch that exact file, weak model and its run, "
        "Prefect flow run, metrics and promotion decisions.",
        epilog="examples:\n  w2s lineage w2s-strong@champion\n  w2s lineage w2s-strong/3 --json\n"
        "  w2s lineage w2s-strong/3 --fetch-weak-labels labels.parquet",
    )
    li.add_argument("model", help="<name>/<version> or <name>@<alias>")
    li.add_argument("--json", action="store_true", help="print the chain as JSON")
    li.add_argument("--fetch-weak-labels", metavar="FILE", help="write the exact weak-label file here")
    li.add_argument("--fetch-data", metavar="DIR", help="restore the exact data version under DIR")
    li.set_defaults(func=cmd_lineage)


def add_reproduce(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `reproduce` verb."""
    rp = sub.add_parser(
        "reproduce",
        formatter_class=fmt,
        help="re-run a version from its recorded config and data",
        description="Restore the model version's data version from DVC into a scratch project, re-run the "
        "pipeline with the recorded config and a cold cache (nothing registered), and show the "
        "metrics beside the recorded ones. Exit 0 when everything matches within --tolerance "
        "and the data, weak-label and student-label hashes are identical.",
        epilog="example:\n  w2s reproduce w2s-strong/3",
    )
    rp.add_argument("model", help="<name>/<version> or <name>@<alias>")
    rp.add_argument("--tolerance", type=float, default=0.0, help="allowed |Δ| per metric (default 0: bit-equal)")
    rp.add_argument("--keep", action="store_true", help="keep the scratch project under .w2s/reproduce/")
    rp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    rp.set_defaults(func=cmd_reproduce)


PARSERS = (add_lineage, add_reproduce)

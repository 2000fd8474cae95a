"""Operations verbs: retrain, promote, rollback, lineage, predict, gc, reproduce, deploy."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s.errors import W2SError

if TYPE_CHECKING:
    from w2s.config import Config
    from w2s.project import Project


def _project_config(args: argparse.Namespace) -> tuple[Project, Config]:
    """The project and its config (params.yaml or --config, with --set overrides), validated."""
    from w2s.config import load_config
    from w2s.project import Project

    project = Project.discover()
    path = getattr(args, "config", None) or (project.params_file if project.params_file.is_file() else None)
    return project, load_config(path, args.set)


def _start_flows() -> None:
    """Boot Prefect's temporary server (when no server is configured) and tame its logging."""
    from cli.common import tune_logging
    from cli.prefect_server import start_temporary_server_early

    ready = start_temporary_server_early()
    import flows.pipeline  # noqa: F401  (Prefect sets up its log handlers on import; filter them after)

    tune_logging()
    ready()


def _print_decision(decision: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.4f}"

    if decision.get("unchanged"):
        print(f"promotion gate: {decision['model']}/{decision['challenger']} UNCHANGED")
        for reason in decision["reasons"]:
            print(f"  {reason}")
        return
    verdict = "PROMOTED" if decision["promoted"] else "REJECTED"
    table = Table(title=f"promotion gate: {decision['model']}/{decision['challenger']} {verdict}", title_justify="left")
    for col in ("check", "challenger", f"champion ({decision['champion'] or 'none'})", "rule"):
        table.add_column(col)
    table.add_row(
        f"{decision['metric']} on eval set ({decision['eval_set']['rows']} rows)",
        fmt(decision["challenger_score"]),
        fmt(decision["champion_score"]),
        f"margin {fmt(decision['margin'])} ≥ {decision['min_margin']}",
    )
    for name, f in decision["floors"].items():
        table.add_row(f"floor {name}", fmt(f["value"]), "", f"≥ {f['floor']}: {'ok' if f['ok'] else 'FAILED'}")
    Console(soft_wrap=True).print(table)
    for reason in decision["reasons"]:
        print(f"  {reason}")


def cmd_retrain(args: argparse.Namespace) -> int:
    """Run the retrain flow once: snapshot data, pipeline, promotion gate."""
    from cli.common import preflight

    project, cfg = _project_config(args)  # validates params and overrides before any work
    preflight(cfg, project)
    _start_flows()
    from flows.retrain import retrain

    result = retrain(project_dir=str(project.root), overrides=args.set)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_decision(result["decision"])
    return 0 if result["decision"]["promoted"] or result["decision"].get("unchanged") else 1


def cmd_promote(args: argparse.Namespace) -> int:
    """Gate a registered version against the champion by hand; move the alias only on a pass."""
    from cli.common import check_eval_set
    from tasks.serialise import promotion_serialised
    from w2s.ops import promotion, tracking

    project, cfg = _project_config(args)
    check_eval_set(cfg, project)  # a wrong evaluation file fails before any model is downloaded
    tracking.configure(project)
    ref = args.model or f"{cfg.registry.model_name}@challenger"
    decision = promotion.promote(cfg, project, ref, serialise=promotion_serialised)
    if args.json:
        print(json.dumps(decision.as_dict(), indent=2, default=str))
    else:
        _print_decision(decision.as_dict())
    return 0 if decision.promoted else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move the champion alias back to the version it pointed at before."""
    from tasks.serialise import promotion_serialised
    from w2s.ops import promotion, tracking

    project, cfg = _project_config(args)
    tracking.configure(project)
    name = args.model or cfg.registry.model_name
    alias = cfg.promotion.champion_alias
    old, new = promotion.rollback(project, name, alias, serialise=promotion_serialised)
    if args.json:
        print(json.dumps({"model": name, "alias": alias, "from": old, "to": new}))
    else:
        print(f"{name}@{alias}: version {old} -> version {new}")
    return 0


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


def cmd_predict(args: argparse.Namespace) -> int:
    """Batch inference with a registered version over a file of texts."""
    from w2s.core.progress import Progress, interval
    from w2s.ops import predict, tracking
    from w2s.project import Project

    project = Project.discover()
    tracking.configure(project)
    with Progress("predict", "row", every_s=interval(10.0)) as shown:
        result = predict.predict_file(
            args.model,
            Path(args.input),
            Path(args.output),
            text_column=args.text_column,
            id_column=args.id_column,
            progress=shown.update,
        )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(
            f"{result.rows} rows -> {result.output} with {result.model}/{result.version} "
            f"({result.seconds:.1f} s; record: {predict.sidecar(Path(result.output))})"
        )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Remove old cache entries, run folders and unaliased model versions (or list them)."""
    from tasks.serialise import promotion_serialised
    from w2s.ops import gc, tracking

    project, cfg = _project_config(args)
    gc.check_age(args.older_than, args.force)  # before touching any store
    tracking.configure(project)
    out = gc.collect(
        project,
        args.model or [cfg.registry.model_name],
        args.older_than,
        args.dry_run,
        force=args.force,
        serialise=promotion_serialised,
        wait_s=args.wait,
        on_wait=lambda: print(f"gc: waiting up to {args.wait:g} s for the runs at work to finish", file=sys.stderr),
    )
    if args.json:
        print(json.dumps(out.as_dict(), indent=2))
        return 0
    verb = "would remove" if out.dry_run else "removed"
    print(
        f"{verb}: {len(out.cache_entries)} cache entries, {len(out.run_folders)} run folders, "
        f"{len(out.versions)} model versions ({', '.join(out.versions) or 'none'}) with "
        f"{len(out.logged_models)} logged models; {out.bytes_freed / 2**20:.1f} MiB"
    )
    print(f"kept: {', '.join(out.kept_versions) or 'no registered version'} (aliased, and their previous champions)")
    if out.killed_runs:
        print(f"marked KILLED: {len(out.killed_runs)} run(s) whose process died ({', '.join(out.killed_runs)})")
    for note in out.notes:
        print(f"note: {note}")
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
        _start_flows()
        from flows.pipeline import pipeline

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


def cmd_deploy(args: argparse.Namespace) -> int:
    """Serve the retrain deployment of prefect.yaml, with its schedule, on the Prefect server."""
    from prefect.settings import PREFECT_API_URL

    from flows.deploy import deployment_spec, find_prefect_yaml, schedules, serve
    from w2s.project import Project

    if not PREFECT_API_URL.value():
        raise W2SError(
            "w2s deploy needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api "
            "after `prefect server start`, or the server in infra/)"
        )
    project = Project.discover()
    path = find_prefect_yaml(project.root)
    spec = deployment_spec(path, args.name)
    when = ", ".join(s.cron or str(s.interval or s.rrule) for s in schedules(spec)) or "no schedule"
    print(f"serving deployment {spec['name']} from {path} ({when}) for project {project.root}", file=sys.stderr)
    from cli.common import tune_logging

    tune_logging()
    serve(spec, str(project.root))
    return 0


def add_parsers(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """Register the operations verbs on the top-level parser."""

    def config_args(p: argparse.ArgumentParser, with_file: bool = True) -> None:
        if with_file:
            p.add_argument("--config", metavar="FILE", help="YAML config (default: ./params.yaml)")
        p.add_argument(
            "--set",
            metavar="KEY=VALUE",
            action="append",
            default=[],
            help="override a config key, e.g. --set promotion.min_margin=0.01 (repeatable)",
        )

    rt = sub.add_parser(
        "retrain",
        formatter_class=fmt,
        help="snapshot data, run the pipeline, gate the challenger",
        description="What the scheduled deployment runs, once, by hand: `dvc add` + push the data, run the "
        "pipeline on params.yaml, score the new version and the champion on the same evaluation "
        "set, and move the champion alias only if the promotion gate passes. Exit 0 when "
        "promoted, 1 when rejected.",
        epilog="example:\n  w2s retrain --set promotion.min_margin=0.005",
    )
    config_args(rt, with_file=False)
    rt.add_argument("--json", action="store_true", help="print the result as JSON")
    rt.set_defaults(func=cmd_retrain)

    pr = sub.add_parser(
        "promote",
        formatter_class=fmt,
        help="gate a registered version against the champion",
        description="Score MODEL (default <registry.model_name>@challenger) and the champion on the same "
        "evaluation set, check the floors of promotion.*, and move the champion alias only if "
        "every check passes. The decision is logged to MLflow and tagged on the version. Exit 0 "
        "when promoted, 1 when rejected.",
        epilog="examples:\n  w2s promote w2s-strong/7\n  w2s promote --set promotion.floors.pgr=0.3",
    )
    pr.add_argument("model", nargs="?", help="<name>/<version> or <name>@<alias>")
    config_args(pr)
    pr.add_argument("--json", action="store_true", help="print the result as JSON")
    pr.set_defaults(func=cmd_promote)

    rb = sub.add_parser(
        "rollback",
        formatter_class=fmt,
        help="move the champion alias back to the previous champion",
        description="Point the champion alias at the version it pointed at before the current one "
        "(recorded at promotion as the version tag previous_champion).",
        epilog="example:\n  w2s rollback w2s-strong",
    )
    rb.add_argument("model", nargs="?", help="registered model name (default registry.model_name)")
    config_args(rb)
    rb.add_argument("--json", action="store_true", help="print the result as JSON")
    rb.set_defaults(func=cmd_rollback)

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

    pd_ = sub.add_parser(
        "predict",
        formatter_class=fmt,
        help="batch inference with a registered model version",
        description="Read INPUT (CSV, TSV, JSONL or Parquet) in batches, predict every text with MODEL and write "
        "id, label and one p_<label> probability column per class to OUTPUT (.parquet, .csv or .jsonl, "
        "written whole or not at all). Ids come from --id-column, else the input's `id` column, else "
        "the row number. OUTPUT.json records the model version, its run and the input's md5.",
        epilog="examples:\n  w2s predict w2s-strong@champion --input new.csv --output scores.parquet\n"
        "  w2s predict w2s-strong/3 --input posts.jsonl --output out.csv --text-column body",
    )
    pd_.add_argument("model", help="<name>/<version> or <name>@<alias>")
    pd_.add_argument("--input", required=True, metavar="FILE", help="texts to predict")
    pd_.add_argument("--output", required=True, metavar="FILE", help="where the predictions go")
    pd_.add_argument("--text-column", default="text", help="the column holding the texts (default text)")
    pd_.add_argument("--id-column", default=None, help="the column of row ids (default: id, else row numbers)")
    pd_.add_argument("--json", action="store_true", help="print the record as JSON")
    pd_.set_defaults(func=cmd_predict)

    gcp = sub.add_parser(
        "gc",
        formatter_class=fmt,
        help="remove old caches, run folders and unaliased model versions",
        description="Remove cache entries, run folders and registered versions older than --older-than "
        "days. Kept whatever their age: every version with an alias, the previous champion of "
        "each (what rollback needs), every version w2s did not register, every version of a model "
        "not named, a logged model a kept version shares, and the cache entry and run folder of "
        "every kept version of any registered model. MLflow run and experiment records are never "
        "deleted (soft-deleted ones included), nor is the DVC remote, so lineage and reproduce of "
        "every kept version still work. It waits for no run: with a run, sweep or DVC stage at work "
        "in the project it stops (exit 3) unless --wait gives it time; it holds the promotion lock "
        "of each model while it works, and marks KILLED the runs that killed processes left RUNNING.",
        epilog="examples:\n  w2s gc --dry-run\n  w2s gc --older-than 7 --json",
    )
    gcp.add_argument("model", nargs="*", help="registered model names (default registry.model_name)")
    gcp.add_argument(
        "--older-than", type=float, default=30.0, metavar="DAYS", help="retention period in days (default 30)"
    )
    gcp.add_argument(
        "--force", action="store_true", help="allow --older-than under one hour (collects runs that just finished)"
    )
    gcp.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for runs at work to finish"
    )
    gcp.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    gcp.add_argument("--json", action="store_true", help="print the collection as JSON")
    config_args(gcp)
    gcp.set_defaults(func=cmd_gc)

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

    dp = sub.add_parser(
        "deploy",
        formatter_class=fmt,
        help="serve the scheduled retrain deployment of prefect.yaml",
        description="Register the deployment declared in prefect.yaml (the project's, else the one shipped with "
        "w2s) on the Prefect server at PREFECT_API_URL with its schedule, and execute its runs in "
        "this process until interrupted.",
        epilog="example:\n  PREFECT_API_URL=http://127.0.0.1:4200/api w2s deploy",
    )
    dp.add_argument("--name", default="w2s-retrain", help="deployment name in prefect.yaml (default w2s-retrain)")
    dp.set_defaults(func=cmd_deploy)

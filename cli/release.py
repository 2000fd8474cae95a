"""Verbs that move a model towards production: `retrain` (what the schedule runs), `promote`
(the gate by hand), `rollback`, and `deploy` (serve the scheduled retraining)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from w2s.cli.common import config_args, project_config, start_flows
from w2s.errors import W2SError


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
    from w2s.cli.common import preflight

    project, cfg = project_config(args)  # validates params and overrides before any work
    preflight(cfg, project)
    start_flows()
    from w2s.flows.retrain import retrain

    config_file = str(Path(args.config).resolve()) if args.config else None
    result = retrain(project_dir=str(project.root), overrides=args.set, config_file=config_file)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_decision(result["decision"])
    return 0 if result["decision"]["promoted"] or result["decision"].get("unchanged") else 1


def cmd_promote(args: argparse.Namespace) -> int:
    """Gate a registered version against the champion by hand; move the alias only on a pass."""
    from w2s.cli.common import check_eval_set
    from w2s.ops import promotion, tracking
    from w2s.tasks.promotion_lock import promotion_serialised

    project, cfg = project_config(args)
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
    from w2s.ops import promotion, tracking
    from w2s.tasks.promotion_lock import promotion_serialised

    project, cfg = project_config(args)
    tracking.configure(project)
    name = args.model or cfg.registry.model_name
    alias = cfg.promotion.champion_alias
    old, new = promotion.rollback(project, name, alias, serialise=promotion_serialised)
    if args.json:
        print(json.dumps({"model": name, "alias": alias, "from": old, "to": new}))
    else:
        print(f"{name}@{alias}: version {old} -> version {new}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Serve the retrain deployment of prefect.yaml, with its schedule, on the Prefect server."""
    from prefect.settings import PREFECT_API_URL

    from w2s.flows.deploy import deployment_spec, find_prefect_yaml, schedules, serve
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
    from w2s.cli.common import tune_logging

    tune_logging()
    serve(spec, str(project.root))
    return 0


def add_retrain(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `retrain` verb."""
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
    config_args(rt)
    rt.add_argument("--json", action="store_true", help="print the result as JSON")
    rt.set_defaults(func=cmd_retrain)


def add_promote(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `promote` verb."""
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


def add_rollback(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `rollback` verb."""
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


def add_deploy(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `deploy` verb."""
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


PARSERS = (add_retrain, add_promote, add_rollback, add_deploy)

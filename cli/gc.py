"""`w2s gc`: bounded disk for a project that retrains on a schedule."""

from __future__ import annotations

import argparse
import json
import sys

from w2s.cli.common import config_args, project_config


def cmd_gc(args: argparse.Namespace) -> int:
    """Remove old cache entries, run folders and unaliased model versions (or list them)."""
    from w2s.ops import gc, tracking
    from w2s.tasks.promotion_lock import promotion_serialised

    project, cfg = project_config(args)
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


def add_gc(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `gc` verb."""
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


PARSERS = (add_gc,)

"""The `results` verb: store a finished sweep's raw outputs in the repository (DVC), and
regenerate, or check, the tables of the results document from the stored sweeps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from w2s.cli.common import usage

EXAMPLES = {
    "store": "w2s results store .w2s/sweeps/sweep-20250101-120000-abc123 paired-tweets",
    "write": "w2s results write\n  w2s results write --doc docs/results.md",
    "check": "w2s results check",
}
DOC = "docs/results.md"


def cmd_store(args: argparse.Namespace) -> int:
    """Copy a sweep's raw outputs to results/NAME, `dvc add` them and push to the `results` remote."""
    from w2s.analysis.stored_sweeps import store
    from w2s.project import Project

    project = Project.discover()
    sweep_dir = Path(args.sweep_dir)
    if not sweep_dir.is_absolute():
        sweep_dir = (Path.cwd() / sweep_dir).resolve()
    done = store(project, sweep_dir, args.name)
    if args.json:
        print(json.dumps(done.__dict__, indent=2))
        return 0
    print(f"stored {len(done.files)} files in {done.path}, tracked by {done.dvc_file} (md5 {done.md5})")
    print("pushed to the DVC remote 'results' (results/dvc-store, a folder of the repository)")
    print(
        f"to record it: git add {done.dvc_file} results/.gitignore results/dvc-store results/seed-ledger.json "
        ".dvc/config && git commit"
    )
    print(f"then name it in a block of {DOC}: <!-- results:{done.name} configurations --> ... <!-- /results -->")
    return 0


def _doc(args: argparse.Namespace):
    from w2s.errors import W2SError
    from w2s.project import Project

    project = Project.discover()
    doc = Path(args.doc) if Path(args.doc).is_absolute() else project.root / args.doc
    if not doc.is_file():
        raise W2SError(f"results document not found: {args.doc}")
    return project, doc


def cmd_write(args: argparse.Namespace) -> int:
    """Rewrite every generated block of the document from its stored sweep."""
    from w2s.analysis.results_doc import write

    project, doc = _doc(args)
    changed = write(project, doc)
    if args.json:
        print(json.dumps({"doc": args.doc, "changed": changed}, indent=2))
    else:
        print(f"{args.doc}: {len(changed)} block(s) rewritten" + "".join(f"\n  {c}" for c in changed))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 1 naming every block that differs from its stored sweep; 0 when all match."""
    from w2s.analysis.results_doc import blocks, check

    project, doc = _doc(args)
    stale = check(project, doc)
    count = len(blocks(doc.read_text(encoding="utf-8"), args.doc))
    if args.json:
        print(json.dumps({"doc": args.doc, "blocks": count, "differ": stale}, indent=2))
    elif stale:
        for label in stale:
            print(f"{args.doc}: {label} differs from its stored outputs", file=sys.stderr)
        print(f"run `w2s results write` to regenerate ({len(stale)} of {count} differ)", file=sys.stderr)
    else:
        print(f"{args.doc}: all {count} generated blocks match their stored sweeps")
    return 1 if stale else 0


def add_results(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `results` verb and its `store`, `write` and `check` actions."""
    p = sub.add_parser(
        "results",
        help="store sweeps' raw outputs; regenerate the results document from them",
        description="Raw outputs of sweeps, versioned in the repository, and the tables of the "
        "results document regenerated from them.",
    )
    actions = p.add_subparsers(dest="results_command", metavar="ACTION")
    st = actions.add_parser(
        "store",
        formatter_class=fmt,
        help="store a finished sweep's raw outputs under results/NAME (DVC)",
        description="Copy a finished sweep's raw outputs (sweep.json: its config, commit and seeds; "
        "points.json: the per-seed metrics; each point's per-row test correctness) to results/NAME, "
        "`dvc add` it and push it to the DVC remote 'results', a folder of the repository "
        "(results/dvc-store, added to .dvc/config when missing), so a fresh clone can pull it.",
        epilog="example:\n  " + EXAMPLES["store"],
    )
    st.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the sweep's folder (printed at the end of `w2s sweep`)")
    st.add_argument("name", metavar="NAME", help="its name under results/ (lowercase, digits, '.', '_', '-')")
    st.add_argument("--json", action="store_true", help="print what was stored as JSON")
    st.set_defaults(func=cmd_store)
    for name, func, text in (
        ("write", cmd_write, "rewrite every generated table block of the document from its stored sweep"),
        ("check", cmd_check, "exit 1 naming each block that differs from its stored sweep, 0 when all match"),
    ):
        a = actions.add_parser(
            name,
            formatter_class=fmt,
            help=text,
            description=f"{text[0].upper()}{text[1:]}. A block is the text between "
            "`<!-- results:NAME KIND -->` and `<!-- /results -->`; KIND is one of sweep, "
            "configurations, methods, differences (option metrics=a,b), within, dynamics, selection. "
            "Stored sweeps missing from the workspace are pulled from the DVC remote 'results' first.",
            epilog="example:\n  " + EXAMPLES[name],
        )
        a.add_argument("--doc", default=DOC, metavar="FILE", help=f"the document (default {DOC})")
        a.add_argument("--json", action="store_true", help="print the outcome as JSON")
        a.set_defaults(func=func)
    p.set_defaults(func=lambda a: usage(p))


PARSERS = (add_results,)

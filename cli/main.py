"""The `w2s` command line: the face of the application (it may import flows)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from w2s.cli.common import usage
from w2s.errors import ServiceUnavailable, W2SError, redact

# Exit codes a scheduler can act on (README, "Exit codes"): 1 is a verdict, not a failure.
EXIT_REJECTED = 1  # promote / retrain rejected the challenger; reproduce found a difference
EXIT_BAD_INPUT = 2  # bad config, data or arguments: fix the input, retrying will not help
EXIT_UNAVAILABLE = 3  # a service (MLflow server, DVC remote) did not answer: retry later
EXIT_INTERNAL = 4  # an unexpected error: a bug to report, with the traceback printed above

if TYPE_CHECKING:
    pass


# Quiet, robust defaults for the embedded services; the user's environment wins.
ENV_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def _setup_env() -> None:
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("w2s")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The `w2s` parser: every verb, registered by the module that implements it."""
    from w2s.cli import audit, experiment, gc, models, predict, project, release, stored_results, ui

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="w2s",
        formatter_class=fmt,
        description="Weak-to-strong generalization pipeline: train a weak supervisor, label data, "
        "fine-tune a strong student on the weak labels, measure PGR, register the model.",
        epilog="examples:\n  w2s init my-project --data reviews.csv\n  w2s data fetch\n  w2s run\n  w2s run --help",
    )
    parser.add_argument("--version", action="version", version=f"w2s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (experiment, models, project, release, audit, predict, gc, stored_results):
        for add in module.PARSERS:
            add(sub, fmt)
    ui.add_parser(sub, fmt)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `w2s` console script."""
    _setup_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[Any], int] | None = getattr(args, "func", None)
    if func is None:
        return usage(parser)
    try:
        return func(args)
    except ServiceUnavailable as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except W2SError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's input: the traceback is for the report
        import traceback

        traceback.print_exc()
        print(f"error: internal error: {redact(str(exc).splitlines()[0] if str(exc) else repr(exc))}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

"""What the command-line verbs share: logging tuned for one-line user errors, and the checks
that run before any training starts."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from w2s.errors import W2SError

if TYPE_CHECKING:
    from w2s.config import Config
    from w2s.project import Project


# Libraries that narrate routine work at INFO (GX's temp docs folder, DVC's git hints).
QUIET_LOGGERS = ("great_expectations", "dvc", "mlflow.models", "alembic")


class _OneLineUserErrors(logging.Filter):
    """Drop tracebacks from log records about user errors: they get one line, not a stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], W2SError):
            record.exc_info = None
            record.exc_text = None
        return True


def tune_logging() -> None:
    """After Prefect configured logging: quiet chatty libraries, one line for user errors."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    filt = _OneLineUserErrors()
    for name in ["prefect", *[n for n in logging.root.manager.loggerDict if n.startswith("prefect")]]:
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(filt)


def preflight(cfg: Config, project: Project) -> None:
    """Checks that need no training: paths stay in the project, the data file (or local HF
    dataset) and the promotion's evaluation file open and start well, named models exist and their
    options (depth, LoRA targets, precision) fit them."""
    from w2s.core.data.sources import probe_source
    from w2s.core.models.classifier import check_options
    from w2s.methods import get as get_method

    if cfg.data.path:
        project.resolve_inside(cfg.data.path)
    probe_source(cfg.data, project)
    check_eval_set(cfg, project)
    check_options(cfg.strong, "strong")
    if cfg.strong.backend == "deepspeed":  # refuse impossible rank settings before any training
        from w2s.pipeline.distributed.dsconfig import resolve
        from w2s.pipeline.distributed.launch import hostfile_slots

        hostfile = cfg.strong.distributed.hostfile
        world = hostfile_slots(project.root / hostfile) if hostfile else cfg.strong.distributed.processes
        resolve(cfg.strong, world, project.root)
    method = get_method(cfg.method)(cfg)
    for weak in [cfg.weak, *cfg.selection.candidates.values(), *method.weak_models()]:
        if weak.kind == "encoder":
            check_options(weak.encoder, "weak.encoder")


def check_eval_set(cfg: Config, project: Project) -> None:
    """`promotion.eval_set`, when set: a file inside the project that opens and has the columns
    the gate reads (data.text_column, data.label_column, data.id_column), so that a wrong one fails
    before training, not after registration; every error names `promotion.eval_set`."""
    from w2s.core.data.sources import probe_source
    from w2s.errors import DataError

    eval_set = cfg.promotion.eval_set
    if not eval_set:
        return
    project.resolve_inside(eval_set, key="promotion.eval_set")
    # read as the gate reads it (w2s.ops.promotion.evaluation_set): the data settings, this file
    data = cfg.data.model_copy(update={"path": eval_set, "hf_name": None, "max_rows": None, "dedupe": False})
    try:
        probe_source(data, project)
    except DataError as exc:
        raise DataError(f"promotion.eval_set '{eval_set}': {exc}") from None


def config_args(p: argparse.ArgumentParser, with_file: bool = True) -> None:
    """The --config FILE and --set KEY=VALUE options a verb that reads the config takes."""
    if with_file:
        p.add_argument(
            "--config", metavar="FILE", help="YAML config used instead of ./params.yaml (the whole config, not a layer)"
        )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config key; the value is YAML: --set strong.epochs=1, "
        "--set data.labels='[neg, pos]', --set promotion.floors='{pgr: 0.2}' (repeatable, applied in order)",
    )


def project_config(args: argparse.Namespace) -> tuple[Project, Config]:
    """The project and its config (params.yaml or --config, with --set overrides), validated."""
    from w2s.config import load_config
    from w2s.project import Project

    project = Project.discover()
    path = getattr(args, "config", None) or (project.params_file if project.params_file.is_file() else None)
    return project, load_config(path, getattr(args, "set", []))


def start_flows() -> None:
    """Boot Prefect's temporary server (when no server is configured) and tame its logging."""
    from w2s.cli.prefect_server import start_temporary_server_early

    ready = start_temporary_server_early()
    import w2s.flows.pipeline  # noqa: F401  (Prefect sets up its log handlers on import; filter them after)

    tune_logging()
    ready()


def usage(parser: argparse.ArgumentParser) -> int:
    """A verb given no action: its help on stderr, exit 2."""
    import sys

    parser.print_help(sys.stderr)
    return 2

"""What the command-line verbs share: logging tuned for one-line user errors, and the checks
that run before any training starts."""

from __future__ import annotations

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
    """Checks that need no training: paths stay in the project, named models exist and their
    options (depth, LoRA targets, precision) fit them."""
    from w2s.core.models.classifier import check_options
    from w2s.methods import get as get_method

    if cfg.data.path:
        project.resolve_inside(cfg.data.path)
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

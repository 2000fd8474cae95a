"""Prefect retries for transient failures only: a service that did not answer (MLflow server,
SQLite store busy, network) is retried with exponential backoff; a user error or a bug is not.

Retrying a stage is cheap and safe: its expensive work is content-addressed, so a retry reuses
whatever the failed attempt finished and sealed.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from w2s.errors import ServiceUnavailable, W2SError

# Fragments of the messages MLflow's REST client and SQLAlchemy raise for a busy or absent service.
TRANSIENT_MESSAGES = (
    "Max retries exceeded",
    "Connection refused",
    "Connection aborted",
    "Read timed out",
    "database is locked",
    "503 Service Unavailable",
    "502 Bad Gateway",
)


def is_transient(exc: BaseException) -> bool:
    """Whether an exception is worth retrying."""
    if isinstance(exc, ServiceUnavailable):
        return True
    if isinstance(exc, W2SError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any(m in str(exc) for m in TRANSIENT_MESSAGES)


def _retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except BaseException as exc:  # the failed attempt's exception, re-raised by result()
        return is_transient(exc)
    return False


# Four attempts, 2 / 4 / 8 s apart (±20 %): rides out a server restart, fails in ~15 s otherwise.
RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": _retry_condition,
}

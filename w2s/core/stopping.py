"""Stop long loops running in worker threads when the run they belong to is stopped.

A sweep trains its points in a thread pool. When a scheduler stops the sweep (SIGTERM) the main
thread raises at once, but Python cannot interrupt another thread, and the pool's shutdown waits
for every running point to finish: minutes to hours during which the scheduler's grace period
runs out and the process is killed mid-point. So the code that owns the pool opens a `scope()`
around it; a termination signal or an interrupt leaving the scope sets it, and every training and
prediction loop in the scope's threads calls `check()` once a batch and raises `Stopped` (a
distributed launch waiting on its ranks looks once a second, and stops them first). What the
loop leaves behind is what any failed step leaves: nothing, because cache entries are sealed
only when complete.

The scope travels in a context variable, so it reaches exactly the threads started with a copy
of the opener's context (Prefect's thread pool copies it for each task) and no other run in the
same process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_scope: ContextVar[threading.Event | None] = ContextVar("w2s_stop_scope", default=None)


class Stopped(Exception):
    """A loop gave up because the run it belongs to is stopping (never retried)."""


def check() -> None:
    """Raise `Stopped` if the enclosing scope has been told to stop; a no-op outside any scope."""
    event = _scope.get()
    if event is not None and event.is_set():
        raise Stopped("stopped: the run this work belongs to received a termination signal")


@contextmanager
def scope() -> Iterator[threading.Event]:
    """Open a stop scope for the threads started inside it; a `BaseException` that is not an
    `Exception` (a termination signal, an interrupt) leaving it tells their loops to stop.

    An ordinary exception does not: when one point of a sweep fails, the points still running
    finish and seal their work in the cache, so that a rerun reuses it."""
    event = threading.Event()
    token = _scope.set(event)
    try:
        yield event
    except Exception:
        raise
    except BaseException:
        event.set()
        raise
    finally:
        _scope.reset(token)

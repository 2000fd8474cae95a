"""One promotion of a model at a time, on one machine and across machines.

Gate and apply of a model always hold the project's file lock (`promotion_lock`). When a Prefect
server is configured (`PREFECT_API_URL`), they also hold one slot of a Prefect global
concurrency limit of size 1 named after the model, so promotions from different machines (or
project folders) that share a registry are serialised too. The limit is created on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from w2s.errors import W2SError
from w2s.ops.promotion import LOCK_TIMEOUT_S, promotion_lock, safe_name
from w2s.project import Project


def server_configured() -> bool:
    """Whether Prefect talks to a server (rather than a temporary one of this process)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def limit_name(model: str) -> str:
    return f"w2s-promotion-{safe_name(model)}"


def ensure_limit(name: str) -> None:
    """Create the size-1 global concurrency limit unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        with suppress(ObjectAlreadyExists):  # another promotion created it first
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextmanager
def promotion_serialised(project: Project, model: str) -> Iterator[None]:
    """Hold the file lock and, with a Prefect server, the model's global concurrency slot."""
    with promotion_lock(project, model):
        if not server_configured():
            yield
            return
        from prefect.concurrency.sync import concurrency

        name = limit_name(model)
        ensure_limit(name)
        try:
            with concurrency(name, occupy=1, timeout_seconds=LOCK_TIMEOUT_S, strict=True):
                yield
        except TimeoutError:
            raise W2SError(f"another promotion of '{model}' held {name} for {LOCK_TIMEOUT_S:.0f} s") from None

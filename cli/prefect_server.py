"""Start Prefect's temporary API server early, so it boots while the CLI does its own work."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

# The start in progress, if any: a command that failed its preflight returns without waiting for
# it, and a second command in the same process (tests, a notebook) must not start the server
# again while the first start is still binding its port.
_starting: threading.Thread | None = None


def start_temporary_server_early() -> Callable[[], None]:
    """When no Prefect API is configured, start the temporary server in a background thread and
    return a function that waits for it; the flow's client then finds it running instead of
    starting it and polling for ~10 s. Call the returned function before running a flow. A
    failure here is left for the flow's own start, which raises it properly."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    global _starting
    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None
    if _starting is not None and _starting.is_alive():
        return _starting.join
    # Imported here, in the calling thread: two threads importing overlapping module trees at
    # once can hit the import system's deadlock detection. The thread only launches and polls.
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    process = getattr(server, "server_process", None)
    if server.running and process is not None and process.poll() is not None:
        # In a long-lived process (`w2s deploy`, a notebook) the temporary server of an earlier
        # run can have exited; Prefect would keep pointing at it. Start a new one instead.
        server.running = False
        server.port = None

    def start() -> None:
        with contextlib.suppress(Exception):  # the flow's client retries the start and reports the error
            SubprocessASGIServer().start()

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()
    _starting = thread
    return thread.join

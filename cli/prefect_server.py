"""Start Prefect's temporary API server early, so it boots while the CLI does its own work."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable


def start_temporary_server_early() -> Callable[[], None]:
    """When no Prefect API is configured, start the temporary server in a background thread and
    return a function that waits for it; the flow's client then finds it running instead of
    starting it and polling for ~10 s. Call the returned function before running a flow. A
    failure here is left for the flow's own start, which raises it properly."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None
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
    return thread.join

"""Start Prefect's temporary API server early, so it boots while the CLI does its own work, and
tie its life to the CLI's: a CLI killed by SIGKILL or the OOM killer leaves no server behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

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
            started = SubprocessASGIServer()
            was_running = started.running
            started.start()
            if not was_running and started.server_process is not None:
                guard(started.server_process.pid)

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()
    _starting = thread
    return thread.join


def _started(pid: int) -> str | None:
    """Process `pid`'s start time (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def guard(server_pid: int) -> subprocess.Popen[bytes] | None:
    """Start a watchdog that stops the server when this process dies without stopping it.

    The server is a child process; atexit stops it on a normal exit, but SIGKILL runs no
    handler. The watchdog, in a session of its own (a Ctrl-C to the terminal does not reach
    it), polls its parent: once this process is gone it terminates the server (after checking
    that the pid still is that server, not a recycled one) and exits. Where /proc is missing
    (not Linux) there is nothing to check a pid against, and no watchdog."""
    started = _started(server_pid)
    if started is None:
        return None
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from w2s.cli.prefect_server import watch; watch(*map(int, sys.argv[1:4]))"]
        + [str(os.getpid()), str(server_pid), started],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def watch(parent: int, server: int, server_started: int, poll_s: float = 0.5) -> None:
    """The watchdog's loop (see `guard`)."""
    while True:
        if _started(server) != str(server_started):
            return  # the server stopped (or its pid now names another process): nothing to do
        if os.getppid() != parent:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server, signal.SIGTERM)
            for _ in range(50):
                if _started(server) != str(server_started):
                    return
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(server, signal.SIGKILL)
            return
        time.sleep(poll_s)

"""Which w2s processes are at work in a project, and what dead ones left behind.

Every process that writes the project's cache, run folders or labels (a pipeline run, a sweep,
a DVC stage) holds a *shared* lock on `<state>/activity.lock` for its whole life; `w2s gc` takes
it *exclusively*, so it collects only while nothing is at work, and a run that starts during a
collection waits for it. The kernel drops the lock of a process that dies, SIGKILL and the OOM
killer included, so a crashed run never blocks gc.

A pipeline or sweep run also records, as tags of its MLflow parent run, which process runs it
(host, pid and the process's start time, so a recycled pid is not mistaken for it). A process
that dies without closing its run leaves it RUNNING; `reap_dead_runs` marks such runs, and the
stage runs nested under them, KILLED.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from w2s.errors import ServiceUnavailable
from w2s.project import Project

HOST_TAG = "w2s.host"
PID_TAG = "w2s.pid"
STARTED_TAG = "w2s.pid_started"
LOCK_FILE = "activity.lock"


class ProjectBusy(ServiceUnavailable):
    """A run is at work in the project; an operation that needs it idle can be retried later."""


def _lock_file(project: Project) -> int:
    project.state.mkdir(parents=True, exist_ok=True)
    return os.open(project.state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)


@contextmanager
def working(project: Project) -> Iterator[None]:
    """Hold the project's activity lock shared: gc waits until this block ends."""
    fd = _lock_file(project)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # blocks only while a gc holds it
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def idle(project: Project, wait_s: float = 0.0, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the project's activity lock exclusively (no run is at work while the block runs);
    raise `ProjectBusy` when runs still hold it after `wait_s` seconds. `on_wait` is called once,
    when the first attempt finds the project busy and there is time left to wait."""
    fd = _lock_file(project)
    try:
        deadline = time.monotonic() + wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting and on_wait is not None and time.monotonic() < deadline:
                    on_wait()
                waiting = True
                if time.monotonic() >= deadline:
                    raise ProjectBusy(
                        f"a w2s run is at work in {project.root} (it holds {project.state / LOCK_FILE}); "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None when there is no
    such process. Where /proc is missing, "?" for a live pid: liveness without the start time."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        return stat.read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
    except (OSError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return "?"


def process_tags() -> dict[str, str]:
    """The tags that identify this process on this host."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), STARTED_TAG: process_started(pid) or "?"}


def is_dead(tags: dict[str, str]) -> bool:
    """Whether the process that `process_tags` described is gone. Runs of other hosts, and runs
    without the tags, are never judged dead: this host cannot see their processes."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    started = process_started(int(tags[PID_TAG]))
    if started is None:
        return True
    return "?" not in (started, tags.get(STARTED_TAG, "?")) and started != tags[STARTED_TAG]


def reap_dead_runs(experiment_ids: list[str]) -> list[str]:
    """Mark KILLED every RUNNING run in these experiments whose process died on this host, and
    every RUNNING run nested under one; return their ids."""
    from mlflow.entities import ViewType

    from w2s.ops.tracking import client

    c = client()
    running = [
        r for page in _pages(c, experiment_ids, ViewType.ACTIVE_ONLY) for r in page if r.info.status == "RUNNING"
    ]
    dead = {r.info.run_id for r in running if is_dead(r.data.tags)}
    while True:  # stage runs, and the runs nested under those
        more = {r.info.run_id for r in running if r.data.tags.get("mlflow.parentRunId") in dead} - dead
        if not more:
            break
        dead |= more
    for run_id in sorted(dead):
        c.set_terminated(run_id, "KILLED")
    return sorted(dead)


def _pages(c, experiment_ids: list[str], view) -> Iterator[list]:
    token = None
    while True:
        page = c.search_runs(
            experiment_ids, "attributes.status = 'RUNNING'", run_view_type=view, max_results=1000, page_token=token
        )
        yield list(page)
        token = page.token
        if not token:
            return

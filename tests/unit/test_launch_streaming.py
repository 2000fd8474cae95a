"""The DeepSpeed launch reads its launcher's pipes while the ranks run: rank 0's marked progress
lines reach this process's stderr live, the rest is kept for the error message, and the time limit
and a stop of the run still stop every process of the launch (also one that outlives the launcher)."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from w2s.core import stopping
from w2s.core.progress import MARKER
from w2s.pipeline.distributed.launch import DistributedTrainingError, _rank_error, _run_ranks


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_progress_line_is_forwarded_while_the_ranks_still_run(tmp_path, monkeypatch):
    go = tmp_path / "go"
    code = f"""
import pathlib, sys, time
print("launcher: starting 2 ranks", file=sys.stderr, flush=True)
print("[rank0]: {MARKER}strong-w2s (2 ranks): step 1/4 (25%), 16 examples/s, ETA 3s", file=sys.stderr, flush=True)
end = time.monotonic() + 20
while not pathlib.Path({str(go)!r}).exists() and time.monotonic() < end:
    time.sleep(0.01)
print("a line on stdout")
sys.exit(0 if pathlib.Path({str(go)!r}).exists() else 3)
"""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    done: dict = {}
    runner = threading.Thread(target=lambda: done.update(proc=_run_ranks(_child(code), dict(os.environ), 30, "t")))
    runner.start()
    end = time.monotonic() + 20
    while "step 1/4" not in stderr.getvalue() and time.monotonic() < end:
        time.sleep(0.01)
    forwarded = stderr.getvalue()
    go.touch()  # only now may the child exit: the line arrived while it was running
    runner.join(20)
    assert forwarded == "strong-w2s (2 ranks): step 1/4 (25%), 16 examples/s, ETA 3s\n"
    proc = done["proc"]
    assert proc.returncode == 0, "the child saw the go file, so it was still running when the line came"
    assert proc.stdout == "a line on stdout\n" and proc.stderr == "launcher: starting 2 ranks\n"


def test_the_error_tail_skips_progress_lines(tmp_path, monkeypatch):
    code = f"""
import sys
print("RuntimeError: NCCL timeout", file=sys.stderr)
print("{MARKER}strong-w2s (2 ranks): step 2/4 (50%), 16 examples/s, ETA 2s", file=sys.stderr)
sys.exit(1)
"""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    proc = _run_ranks(_child(code), dict(os.environ), 30, "t")
    assert (
        _rank_error(tmp_path, proc) == "a rank exited with code 1 without a Python error (RuntimeError: NCCL timeout)"
    )
    assert "step 2/4" in sys.stderr.getvalue()


def test_a_process_that_outlives_the_launcher_is_stopped_at_the_time_limit(tmp_path):
    pid_file = tmp_path / "pid"
    # the launcher exits at once; its child (same process group) keeps the pipes open
    code = f"""
import pathlib, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))
"""
    start = time.monotonic()
    with pytest.raises(DistributedTrainingError, match=r"\(t\) did not finish within 1 s"):
        _run_ranks(_child(code), dict(os.environ), 1, "t")
    assert time.monotonic() - start < 10
    pid = int(Path(pid_file).read_text())
    end = time.monotonic() + 5
    while _running(pid) and time.monotonic() < end:  # a signal is delivered asynchronously
        time.sleep(0.02)
    assert not _running(pid), "the launcher's child was stopped with it"


def test_a_stop_of_the_run_stops_every_process_of_the_launch(tmp_path):
    """A sweep's point waits on its ranks in a worker thread, which no signal reaches: when the
    sweep is told to stop, the launch and the processes it started end within seconds."""
    pid_file = tmp_path / "pid"
    code = f"""
import pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))
time.sleep(60)
"""
    start = time.monotonic()
    with stopping.scope() as told:
        threading.Timer(1.0, told.set).start()
        with pytest.raises(stopping.Stopped):
            _run_ranks(_child(code), dict(os.environ), 60, "t")
    assert time.monotonic() - start < 20, "stopped long before the 60 s the ranks would run"
    pid = int(Path(pid_file).read_text())
    end = time.monotonic() + 5
    while _running(pid) and time.monotonic() < end:
        time.sleep(0.02)
    assert not _running(pid), "the launcher's child was stopped with it"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for whoever reaps it, which may be slow in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"

"""Timing helpers shared by the benchmarks: medians over repeats, and child processes measured
for wall time and peak resident memory."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Timed:
    """Seconds of each repeat (and its median), plus whatever the measured call returned last."""

    seconds: list[float]
    value: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(
    fn: Callable[..., Any], repeats: int, warmup: int = 0, prepare: Callable[[], tuple[Any, ...]] | None = None
) -> Timed:
    """Call `fn` `warmup` times unmeasured, then `repeats` times measured; `prepare` builds its
    arguments afresh before each call, outside the measured time."""
    seconds, value = [], None
    for i in range(warmup + repeats):
        args = prepare() if prepare else ()
        start = time.perf_counter()
        value = fn(*args)
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return Timed(seconds, value)


def padded_tokens(lengths: Any, batches: list[Any]) -> int:
    """Tokens a model computes over when each batch (row indices) is padded to its longest row."""
    return int(sum(len(b) * lengths[b].max() for b in batches))


@dataclass
class ProcessRun:
    """A finished child process: wall seconds, peak RSS of its whole process tree, its output."""

    seconds: float
    peak_rss_mb: float
    output: str


def bench_env(**extra: str) -> dict[str, str]:
    """The environment every measured process gets: offline, quiet, no telemetry."""
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "TOKENIZERS_PARALLELISM": "false",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env


def run_process(cmd: list[str], cwd: Path, env: dict[str, str], interval: float = 0.2) -> ProcessRun:
    """Run `cmd` to completion; sample the summed RSS of it and all its descendants. A failure
    raises with the tail of its stderr, so a broken benchmark never reports a number."""
    import psutil

    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):  # a child that exited between listing and reading
                        total += p.memory_info().rss
            except psutil.Error:
                pass
            peak = max(peak, total)
            time.sleep(interval)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-3000:]}")
    return ProcessRun(seconds, peak / 2**20, stdout)

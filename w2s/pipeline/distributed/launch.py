"""Start N training ranks (torchrun, or the DeepSpeed launcher for a hostfile), wait for them, and
bring back rank 0's trained weights. A failure on any rank fails the step with that rank's error.

The ranks read the same files the parent does (splits, weak labels, model cache) and write only
into a job folder; nothing but the parent process logs to MLflow or publishes artifacts.
Checkpoints live in the cache under the run's content hash, so rerunning a killed step resumes.
Rank 0's progress lines are forwarded to this process's stderr as they arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from w2s.config import Config
from w2s.core import stopping
from w2s.core.cache import ArtifactCache
from w2s.core.config import StrongConfig, stable_hash, weights_only
from w2s.core.progress import MARKER, interval
from w2s.core.train import TrainResult
from w2s.errors import ConfigError, W2SError
from w2s.io import read_json, write_json
from w2s.pipeline.distributed.dsconfig import resolve

WORKER = "w2s.pipeline.distributed.worker"
STOP_POLL_S = 1.0  # how often a launch waiting on its ranks looks whether its run was told to stop
# The fields of rank 0's result.json that describe training itself.
RECORD_FIELDS = {"steps", "seconds", "examples_per_s", "best_step", "best_score", "curve", "resumed_from_step"}


class DistributedTrainingError(W2SError):
    """A rank failed; the message names the rank and its last error line."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(cfg: Config, job: Path) -> list[str]:
    """The launcher command line for this config (`hostfile` implies the DeepSpeed launcher)."""
    d = cfg.strong.distributed
    if d.hostfile or d.launcher == "deepspeed":
        cmd = [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--no_local_rank",
            "--master_port",
            str(d.master_port),
        ]
        cmd += ["--hostfile", d.hostfile] if d.hostfile else ["--num_gpus", str(d.processes)]
        return [*cmd, "--module", WORKER, str(job)]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(d.processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        WORKER,
        str(job),
    ]


def check_device(scfg: StrongConfig) -> None:
    """A precision the device cannot run is refused before any rank starts."""
    from w2s.core.models.classifier import check_precision

    try:
        check_precision(scfg.precision)
    except ConfigError as exc:
        raise ConfigError(f"strong.{exc}") from None


def checkpoint_dir(cache: ArtifactCache, job: dict[str, Any]) -> Path:
    """Where a run with exactly these inputs keeps its engine checkpoints."""
    return cache.root / "checkpoints" / stable_hash(job)[:24]


def _rank_error(job_dir: Path, proc: subprocess.CompletedProcess) -> str:
    errors = sorted(job_dir.glob("error-rank*.txt"))
    if errors:
        rank = errors[0].stem.removeprefix("error-rank")
        first = (errors[0].read_text().splitlines() or ["no message"])[0]  # the worker's one-line summary
        return f"rank {rank} failed: {first}"
    tail = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()][-1:] or ["no output"]
    return f"a rank exited with code {proc.returncode} without a Python error ({tail[0][:300]})"


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the launcher and every rank it started (one process group): TERM, then KILL."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _pump(pipe: IO[str], kept: list[str], forward: Callable[[str], None]) -> None:
    """Read one of the launcher's pipes as lines arrive: a rank's progress line (the marker may
    follow a launcher's prefix) is forwarded without the marker, everything else is kept."""
    with pipe:
        for line in pipe:
            at = line.find(MARKER)
            if at >= 0:
                forward(line[at + len(MARKER) :].rstrip("\n"))
            else:
                kept.append(line)


def _run_ranks(cmd: list[str], env: dict[str, str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """Run the launcher in its own process group; past `timeout_s`, when this process is
    interrupted or terminated, or when the run this step belongs to is told to stop (a sweep's
    point in a worker thread, which no signal reaches), stop the whole group so no rank outlives
    the step.

    Both pipes are read while the ranks run, so rank 0's progress lines reach this process's
    stderr live; the rest of the output is kept for the error message."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    )
    lock = threading.Lock()

    def forward(line: str) -> None:
        with lock:  # one line at a time from the two reader threads
            print(line, file=sys.stderr, flush=True)

    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_pump, args=(pipe, kept, forward), daemon=True, name=f"w2s-ranks-{name}")
        for pipe, kept, name in ((proc.stdout, out, "stdout"), (proc.stderr, err, "stderr"))
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:  # in short waits, so that a stop of the run (w2s.core.stopping) ends the ranks too
            stopping.check()
            try:
                proc.wait(timeout=min(STOP_POLL_S, max(0.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
        for reader in readers:
            # a rank that outlives the launcher holds the pipes open: the same time limit applies
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(reader.is_alive() for reader in readers):
            raise subprocess.TimeoutExpired(cmd, timeout_s)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        raise DistributedTrainingError(
            f"strong training ({what}) did not finish within {timeout_s:g} s (strong.distributed.timeout_s); "
            "every rank was stopped"
        ) from None
    except BaseException:
        _stop_group(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "".join(err))


def train_distributed(
    model: Any, cfg: Config, job_run: dict[str, Any], names: list[str], splits_path: str, cache: ArtifactCache
) -> tuple[TrainResult, dict[str, Any]]:
    """Run training in `strong.distributed.processes` ranks; load the kept weights into `model`.

    `job_run` is what each rank needs to rebuild the training run (`TrainingRun.job()`)."""
    from safetensors.torch import load_file

    role = job_run["kind"]
    labels_path = (job_run.get("labels") or {}).get("path")
    check_device(cfg.strong)
    hostfile = cfg.strong.distributed.hostfile
    world = hostfile_slots(Path(hostfile)) if hostfile else cfg.strong.distributed.processes
    ds_config = resolve(cfg.strong, world, Path.cwd())
    spec = {"config": cfg.model_dump(mode="json"), "run": job_run, "names": names, "ds_config": ds_config}
    # keyed by content, not by path: a rerun of the same step in a new run folder resumes (also
    # with another time limit)
    config = cfg.model_dump(mode="json")
    keyed = {**spec, "config": {**config, "strong": weights_only(config["strong"])}}
    ckpt = checkpoint_dir(cache, {**keyed, "splits_md5": _md5(splits_path), "labels_md5": _md5(labels_path)})
    spec.update(splits=splits_path)
    with tempfile.TemporaryDirectory(prefix="w2s-ranks-", dir=cache.root) as tmp:
        job_dir = Path(tmp)
        job = job_dir / "job.json"
        # the interval travels in the job, not only the environment: a hostfile's remote ranks
        # see the environment DeepSpeed's launcher exports, not ours
        where = {"cache": str(cache.root), "checkpoints": str(ckpt), "out": str(job_dir)}
        write_json(job, {**spec, **where, "progress_s": interval()})
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // world)),
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
        }
        proc = _run_ranks(launch_command(cfg, job), env, cfg.strong.distributed.timeout_s, f"{role}, {world} ranks")
        if proc.returncode != 0 or not (job_dir / "result.json").is_file():
            raise DistributedTrainingError(f"strong training ({role}, {world} ranks): " + _rank_error(job_dir, proc))
        out = read_json(job_dir / "result.json")
        model.load_state_dict(load_file(str(job_dir / "weights.safetensors")))
        shards = {
            int(p.stem.removeprefix("seen-rank")): json.loads(p.read_text()) for p in job_dir.glob("seen-rank*.json")
        }
    shutil.rmtree(ckpt, ignore_errors=True)  # finished: the checkpoints have served their purpose
    result = TrainResult(
        out["steps"], out["seconds"], out["examples_per_s"], out["best_step"], out["best_score"], out["curve"]
    )
    # the rest of rank 0's record is what the loss reported (e.g. learned ensemble weights)
    extras = {k: v for k, v in out.items() if k not in RECORD_FIELDS}
    extras["ranks"] = {
        "world_size": world,
        "resumed_from_step": out.get("resumed_from_step"),
        "examples_per_rank": {r: len(v) for r, v in sorted(shards.items())},
        "ds_config": ds_config,
    }
    extras["shards"] = shards
    return result, extras


def _md5(path: str | None) -> str | None:
    from w2s.io import file_md5

    return file_md5(Path(path)) if path else None


def hostfile_slots(hostfile: Path) -> int:
    """Total ranks of a DeepSpeed hostfile (`host slots=N` per line, `#` comments)."""
    if not hostfile.is_file():
        raise DistributedTrainingError(f"hostfile not found: {hostfile}")
    total = 0
    for line in hostfile.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        slots = [f for f in line.split()[1:] if f.startswith("slots=")]
        if not slots or not slots[0].removeprefix("slots=").isdigit():
            raise DistributedTrainingError(f"{hostfile}: expected 'host slots=N', got '{line}'")
        total += int(slots[0].removeprefix("slots="))
    if total == 0:
        raise DistributedTrainingError(f"{hostfile} lists no hosts")
    return total

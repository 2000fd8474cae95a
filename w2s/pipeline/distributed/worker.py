"""One training rank: `python -m w2s.pipeline.distributed.worker <job.json>`, started by the launcher.

Builds exactly the model, data, loss and evaluator the in-process path builds
(`w2s.pipeline.strong.training_setup`), trains it through the DeepSpeed engine, and on rank 0 writes the
kept weights and the training record into the job folder. Any exception is written to
`error-rank<r>.txt` so the parent can name the failing rank.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from datetime import timedelta
from functools import partial
from pathlib import Path

from w2s.io import write_text

# Reliability testing: the rank of this number never joins (it hangs before the rendezvous).
HANG_ENV = "W2S_FAULT_HANG_RANK"


def run(job_path: Path) -> None:
    import deepspeed
    import pandas as pd
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file

    from w2s.config import Config
    from w2s.core.cache import ArtifactCache
    from w2s.core.progress import MARKER, Progress
    from w2s.core.train import schedule, train
    from w2s.io import atomic_path, read_json, write_json
    from w2s.pipeline.distributed.backend import DeepSpeedBackend
    from w2s.pipeline.strong import TrainingRun, loss_report, training_setup

    job = read_json(job_path)
    if os.environ.get(HANG_ENV) is not None and os.environ.get(HANG_ENV) == os.environ.get("RANK"):
        time.sleep(10**6)
    cuda = torch.cuda.is_available()
    if cuda:  # before the process group: NCCL binds each rank to its current device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", timeout=timedelta(minutes=10))
    rank = dist.get_rank()
    cfg = Config.model_validate(job["config"])
    out = Path(job["out"])
    run = TrainingRun.from_job(cfg, job["run"])
    setup = training_setup(job["names"], pd.read_parquet(job["splits"]), run, ArtifactCache(Path(job["cache"])))
    _, total, _ = schedule(len(setup.encs[0]), setup.settings)
    backend = DeepSpeedBackend(setup.model, cfg.strong, total, job["ds_config"], Path(job["checkpoints"]))
    # Dropout masks differ per rank; everything else (init, batch order) is identical on all ranks.
    result = train(
        setup.trainee,
        setup.encs[0],
        setup.targets,
        setup.settings,
        cfg.seed,
        setup.loss,
        setup.evaluate,
        setup.select,
        desc=f"{run.stage} ({dist.get_world_size()} ranks)",
        aux=setup.aux,
        backend=backend,
        checkpoint_every=cfg.strong.distributed.checkpoint_every,
        # The ranks step in lockstep, so rank 0 speaks for all; the marker lets the launching
        # process pick its lines out of whatever the launcher adds, and forward them live.
        progress=partial(Progress, every_s=job["progress_s"], enabled=rank == 0, marker=MARKER),
    )
    ids = setup.parts[0]["id"].tolist()
    write_text(out / f"seen-rank{rank}.json", json.dumps([ids[i] for i in backend.seen]))
    # every rank computed the same scores, so every rank takes the same branch (ZeRO-3 gathers)
    weights = result.best_state if result.best_score is not None else backend.full_state()
    if rank == 0:
        if weights is None:
            raise RuntimeError("rank 0 holds no weights to save")
        with atomic_path(out / "weights.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp))
        record = {
            "steps": result.steps,
            "seconds": result.seconds,
            "examples_per_s": result.examples_per_s,
            "best_step": result.best_step,
            "best_score": result.best_score,
            "curve": result.curve,
            "resumed_from_step": result.resumed_from or None,
        }
        record.update(loss_report(setup.loss))
        write_json(out / "result.json", record)
    dist.barrier()
    dist.destroy_process_group()


def summary(exc: BaseException) -> str:
    """One line: the exception type and the first lines of its message (pydantic and DeepSpeed
    spread theirs over several)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {' '.join(lines[:3])}"[:500]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    # launchers differ: the DeepSpeed one may append --local_rank=N (LOCAL_RANK is in the env too)
    job_path = Path(next(a for a in args if not a.startswith("--local_rank")))
    try:
        run(job_path)
    except BaseException as exc:
        rank = os.environ.get("RANK", "0")
        write_text(job_path.parent / f"error-rank{rank}.txt", summary(exc) + "\n\n" + traceback.format_exc())
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

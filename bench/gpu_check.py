"""GPU check: fine-tune the strong model for a few hundred steps with the plain torch backend and
with DeepSpeed ZeRO-2 and ZeRO-3, and print throughput and peak GPU memory per configuration.

    bash bench/gpu_check.sh                 # mpnet-base, every visible GPU, 300 steps each
    python bench/gpu_check.py --model minilm-l6 --steps 50 --gpus 1

Each configuration runs in its own process group (torchrun), through the same runners the
pipeline uses (`w2s.core.train.TorchRunner`, `w2s.pipeline.distributed.runner.DeepSpeedRunner`), on
synthetic token ids of a fixed length so that the numbers measure the training step alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("torch", "zero2", "zero3")


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from w2s.config import load_config
    from w2s.core.losses import xent
    from w2s.core.models.classifier import build_classifier

    mode = args.child
    stage = mode[-1] if mode != "torch" else "2"
    cfg = load_config(
        None,
        [
            f"strong.model={args.model}",
            f"strong.batch_size={args.batch}",
            "strong.deepspeed.precision=bf16",
            f"strong.deepspeed.stage={stage}",
            f"strong.distributed.processes={args.gpus}",
        ],
    ).strong
    _, model = build_classifier(cfg.model_copy(update={"num_layers": None}), 2, seed=0)
    n = args.batch * (args.steps + args.warmup)
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(1000, 20000, size=(n, args.seq)))
    mask = torch.ones_like(ids)
    targets = torch.softmax(torch.as_tensor(rng.normal(size=(n, 2)), dtype=torch.float32), -1)
    total = args.steps + args.warmup
    if mode == "torch":
        from w2s.core.train import TorchRunner

        runner = TorchRunner(model, cfg, total)
        rank, world = 0, 1
    else:
        import deepspeed
        import torch.distributed as dist

        from w2s.pipeline.distributed.dsconfig import generate
        from w2s.pipeline.distributed.runner import DeepSpeedRunner

        deepspeed.init_distributed(dist_backend="nccl")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        runner = DeepSpeedRunner(model, cfg, total, generate(cfg, args.gpus), Path(tempfile.mkdtemp()))
        rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device())

    def loss_of(idx):
        logits = runner.model(ids[idx].to(device), mask[idx].to(device))
        return xent(logits, targets[idx].to(device), 0.0)

    batches = np.arange(n).reshape(total, args.batch)
    for b in batches[: args.warmup]:
        runner.step(b, loss_of)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for b in batches[args.warmup :]:
        runner.step(b, loss_of)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if rank == 0:
        print(
            "RESULT "
            + json.dumps(
                {
                    "mode": mode,
                    "gpus": world,
                    "steps": args.steps,
                    "global_batch": args.batch,
                    "seq": args.seq,
                    "examples_per_s": round(args.steps * args.batch / seconds, 1),
                    "peak_gpu_gib_rank0": round(torch.cuda.max_memory_allocated() / 1024**3, 3),
                    "precision": "fp32" if mode == "torch" else "bf16",
                }
            ),
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mpnet-base")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="global batch")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--gpus", type=int, default=0, help="ranks for the DeepSpeed runs (0: all visible)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device visible; this check needs a GPU", file=sys.stderr)
        return 2
    args.gpus = args.gpus or torch.cuda.device_count()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    results = []
    for mode in MODES:
        ranks = 1 if mode == "torch" else args.gpus
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(ranks),
            __file__,
            "--child",
            mode,
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--batch",
            str(args.batch),
            "--seq",
            str(args.seq),
            "--gpus",
            str(args.gpus),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"{mode}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            results.append({"mode": mode, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
    print(f"{'mode':8} {'gpus':>4} {'examples/s':>11} {'peak GiB (rank 0)':>18}  precision")
    for r in results:
        if "error" in r:
            print(f"{r['mode']:8} failed: {r['error']}")
        else:
            print(
                f"{r['mode']:8} {r['gpus']:>4} {r['examples_per_s']:>11} "
                f"{r['peak_gpu_gib_rank0']:>18}  {r['precision']}"
            )
    print(json.dumps({"model": args.model, "seq": args.seq, "results": results}))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

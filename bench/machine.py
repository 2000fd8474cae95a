"""What the numbers were measured on, and how fast this machine multiplies matrices."""

from __future__ import annotations

import os
import platform
from typing import Any

from bench.common import timed


def describe() -> dict[str, Any]:
    """CPU model, cores, memory, and the library versions that decide the speed."""
    import psutil
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores_usable": len(os.sched_getaffinity(0)),
        "cores_logical": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "cuda": torch.cuda.is_available(),
    }


def matmul_flops(n: int = 1024, inner: int = 8, repeats: int = 5) -> dict[str, float]:
    """Achieved fp32 FLOP/s of an n x n matrix product (2 n^3 FLOPs each), median of repeats."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)

    def burst() -> None:
        for _ in range(inner):
            torch.mm(a, b)

    t = timed(burst, repeats, warmup=1)
    return {"n": n, "gflops": 2 * n**3 * inner / t.median / 1e9, "seconds_median": t.median}

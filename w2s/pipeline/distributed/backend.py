"""One rank's share of training on the DeepSpeed engine (the `Runner` of `w2s.core.train`).

Every rank walks the same global batch order; rank r takes every world-th example of each global
batch (a distributed sampler over length-grouped batches), so the ranks' shares are disjoint and
the engine's gradient average equals the global-batch mean. A global batch that does not split
evenly is padded by repeating its first examples, as torch's DistributedSampler does.

Devices: every tensor this backend hands to a collective is built on the engine's device (NCCL
reduces only GPU tensors; gloo only CPU ones), and the losses stay there: a step never waits
for the GPU. The kept checkpoint is copied to host memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2s.core.config import StrongConfig
from w2s.core.train import HostCopies, param_groups, warmup_cosine

# Reliability testing: rank 0 exits hard right after the checkpoint of this optimiser step.
FAULT_ENV = "W2S_FAULT_AFTER_CHECKPOINT_STEP"


class DeepSpeedBackend:
    """Wraps the model in a DeepSpeed engine; checkpoints through the engine for resuming."""

    def __init__(
        self, model: torch.nn.Module, scfg: StrongConfig, total: int, ds_config: dict[str, Any], checkpoint_dir: Path
    ) -> None:
        import deepspeed
        import torch.distributed as dist

        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.stage = ds_config["zero_optimization"]["stage"]
        self.dir = checkpoint_dir
        factor = warmup_cosine(total, scfg.warmup_frac)
        groups = param_groups(model, scfg.weight_decay)
        if "offload_optimizer" in ds_config["zero_optimization"]:
            # offloaded states need DeepSpeed's CPU Adam (built on first use)
            ds_config = {
                **ds_config,
                "optimizer": {"type": "AdamW", "params": {"lr": scfg.lr, "weight_decay": scfg.weight_decay}},
            }
            optim = None
        else:
            # fused: one kernel for the whole update of the engine's flat fp32 partitions (on a
            # CPU too), as in the plain loop; the per-tensor default launches several per tensor
            optim = torch.optim.AdamW(groups, lr=scfg.lr, fused=True)
        self.engine, *_ = deepspeed.initialize(
            model=model,
            optimizer=optim,
            model_parameters=groups if optim is None else None,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor),
            config=ds_config,
        )
        self.model = self.engine.module
        sixteen_bit = any(ds_config.get(key, {}).get("enabled") for key in ("bf16", "fp16"))
        if sixteen_bit and hasattr(self.model, "autocast"):
            # the engine holds the weights in 16 bits and keeps the fp32 masters itself: the
            # classifier's own autocast would add per-op casts and fp32 islands on top
            self.model.autocast = None
        self.accum = self.engine.gradient_accumulation_steps()
        self.seen: list[int] = []
        self.copies = HostCopies()  # rank 0's host copies of the kept checkpoint
        self.frozen_held = False

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's disjoint share of a global batch (padded to split evenly)."""
        unit = self.world * self.accum
        padded = np.resize(idx, math.ceil(len(idx) / unit) * unit)
        return padded[self.rank :: self.world]

    def step(self, idx: np.ndarray, loss_of: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
        import torch.distributed as dist

        local = self.shard(idx)
        self.seen.extend(int(i) for i in local)
        # [loss x examples, examples] of this rank, on the engine's device: the collective's
        # backend needs it there, and summing there never waits for the GPU
        both = torch.zeros(2, dtype=torch.float64, device=self.engine.device)
        both[1] = len(local)
        for micro in np.array_split(local, self.accum):
            loss = loss_of(micro)
            self.engine.backward(loss)
            self.engine.step()
            both[0] += loss.detach().to(torch.float64) * len(micro)
        dist.all_reduce(both)
        return both[0] / both[1]

    def full_state(self) -> dict[str, torch.Tensor] | None:
        """The weights on rank 0 in host memory, in the dtypes the engine holds them; ZeRO-3
        shards are gathered (a collective: every rank calls), the frozen ones only once."""
        import deepspeed

        zero3 = self.stage == 3
        # after the first call rank 0 holds the frozen weights: every rank then gathers the
        # trainable ones only (the same list on every rank, or the collective would hang)
        params = [p for p in self.model.parameters() if p.requires_grad or not self.frozen_held] if zero3 else []
        self.frozen_held = True
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=zero3):
            if not self.is_main:
                return None
            # copied (and waited for) before the gathered weights are released on leaving
            return self.copies.copy(self.model)

    def save(self, step: int, client_state: dict[str, Any], best_state: dict[str, torch.Tensor] | None) -> None:
        import torch.distributed as dist
        from safetensors.torch import save_file

        best = self.dir / f"best-step{client_state['best_step']}.safetensors"
        if self.is_main and best_state is not None and not best.is_file():
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = best.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp))
            os.replace(tmp, best)
        dist.barrier()  # the best weights exist before the checkpoint that refers to them
        self.engine.save_checkpoint(str(self.dir), tag=f"step{step}", client_state={"w2s": client_state})
        dist.barrier()
        if self.is_main and os.environ.get(FAULT_ENV) == str(step):
            os._exit(17)

    def resume(self) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None] | None:
        from safetensors.torch import load_file

        if not (self.dir / "latest").is_file():
            return None
        _, client = self.engine.load_checkpoint(str(self.dir))
        state = client["w2s"]
        best = self.dir / f"best-step{state['best_step']}.safetensors"
        return state, load_file(str(best)) if self.is_main and best.is_file() else None

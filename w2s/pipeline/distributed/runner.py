"""One rank's share of training on the DeepSpeed engine (the `Runner` of `w2s.core.train`).

Every rank walks the same global batch order; rank r takes every world-th example of each global
batch (a distributed sampler over length-grouped batches), so the ranks' shares are disjoint and
the engine's gradient average equals the global-batch mean. A global batch that does not split
evenly is padded by repeating its first examples, as torch's DistributedSampler does.
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
from w2s.core.train import param_groups, warmup_cosine

# Reliability testing: rank 0 exits hard right after the checkpoint of this optimiser step.
FAULT_ENV = "W2S_FAULT_AFTER_CHECKPOINT_STEP"


class DeepSpeedRunner:
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
            optim = torch.optim.AdamW(groups, lr=scfg.lr)
        self.engine, *_ = deepspeed.initialize(
            model=model,
            optimizer=optim,
            model_parameters=groups if optim is None else None,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor),
            config=ds_config,
        )
        self.model = self.engine.module
        self.accum = self.engine.gradient_accumulation_steps()
        self.seen: list[int] = []

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's disjoint share of a global batch (padded to split evenly)."""
        unit = self.world * self.accum
        padded = np.resize(idx, math.ceil(len(idx) / unit) * unit)
        return padded[self.rank :: self.world]

    def step(self, idx: np.ndarray, loss_of: Callable[[np.ndarray], torch.Tensor]) -> float:
        import torch.distributed as dist

        local = self.shard(idx)
        self.seen.extend(int(i) for i in local)
        total = 0.0
        for micro in np.array_split(local, self.accum):
            loss = loss_of(micro)
            self.engine.backward(loss)
            self.engine.step()
            total += loss.item() * len(micro)
        both = torch.tensor([total, float(len(local))], dtype=torch.float64)
        dist.all_reduce(both)
        return float(both[0] / both[1])

    def full_state(self) -> dict[str, torch.Tensor] | None:
        """Full fp32 weights on rank 0; ZeRO-3 shards are gathered (a collective: every rank calls)."""
        import deepspeed

        params = list(self.model.parameters()) if self.stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=self.stage == 3):
            if not self.is_main:
                return None
            return {k: v.detach().float().clone() for k, v in self.model.state_dict().items()}

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

"""The DeepSpeed JSON config, generated from the typed config (or read from an explicit file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from w2s.core.config import StrongConfig
from w2s.errors import ConfigError

# Communication buckets, in elements. DeepSpeed's default (5e8) is a 1 GB bucket of 16-bit
# gradients: more than the whole gradient of a model under ~500M weights, so its reduction waits
# for the end of the backward pass, and overlap_comm's buffers (4.5x the bucket sizes) would take
# ~4.5 GB. 5e7 (100 MB in 16 bits) is still far above the few MB at which NCCL reaches its
# bandwidth, and lets one bucket be reduced while the backward pass computes the next.
BUCKET_ELEMENTS = 50_000_000
# ZeRO-3 keeps a parameter under this many elements whole on every rank instead of gathering and
# releasing it at each use: norms, biases and LoRA adapters (r x width: 16 x 18,944 = 0.3M for
# Qwen2.5-7B's down projection). DeepSpeed's default, 1e5, partitions larger adapters, and each
# of the hundreds of gathers per step is a collective launch their size cannot amortise. At 1e6
# each costs at most 2 MB in 16 bits, and weight matrices stay sharded from hidden size ~1000 up (a
# 1024 x 1024 projection has 1.05M elements; grouped-query key and value projections, a fraction
# of that, stay whole in models of hidden size up to ~1400).
PERSISTENCE_ELEMENTS = 1_000_000


def zero_tuning(stage: int) -> dict[str, Any]:
    """Bucket, overlap and persistence settings of a ZeRO stage (see the constants above)."""
    if stage == 0:
        return {}
    # overlap_comm: reduce a finished bucket while the backward pass goes on (DeepSpeed's default
    # at stage 3 only); contiguous_gradients: copy each gradient into one flat buffer as it is
    # produced, so no fragmented per-tensor gradients outlive the reduction.
    tuning: dict[str, Any] = {"overlap_comm": True, "contiguous_gradients": True, "reduce_bucket_size": BUCKET_ELEMENTS}
    if stage < 3:
        tuning["allgather_bucket_size"] = BUCKET_ELEMENTS  # the updated weights' all-gather after a step
    else:
        tuning["stage3_prefetch_bucket_size"] = BUCKET_ELEMENTS  # weights gathered ahead of their layer
        tuning["stage3_param_persistence_threshold"] = PERSISTENCE_ELEMENTS
    return tuning


def micro_batch(scfg: StrongConfig, world: int) -> int:
    """Examples per rank per micro-step; the global batch must split evenly."""
    accum = scfg.deepspeed.grad_accum
    if scfg.batch_size % (world * accum):
        raise ConfigError(
            f"strong.batch_size={scfg.batch_size} is not divisible by processes x grad_accum = {world} x {accum}"
        )
    return scfg.batch_size // (world * accum)


def generate(scfg: StrongConfig, world: int) -> dict[str, Any]:
    """ZeRO stage, offload, precision, accumulation and clipping from `strong.deepspeed`."""
    ds = scfg.deepspeed
    zero: dict[str, Any] = {"stage": ds.stage, **zero_tuning(ds.stage)}
    if ds.offload_optimizer:
        if ds.stage == 0:
            raise ConfigError("strong.deepspeed.offload_optimizer needs ZeRO stage 1 or higher")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if ds.offload_params:
        if ds.stage != 3:
            raise ConfigError("strong.deepspeed.offload_params needs ZeRO stage 3")
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if ds.stage == 3:
        # gather the full weights when a 16-bit model is saved (what MLflow logs)
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    config: dict[str, Any] = {
        "train_batch_size": scfg.batch_size,
        "train_micro_batch_size_per_gpu": micro_batch(scfg, world),
        "gradient_accumulation_steps": ds.grad_accum,
        "gradient_clipping": ds.grad_clip,
        "zero_optimization": zero,
        # the optimiser is torch's fused AdamW handed to the engine: no DeepSpeed op to compile
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    # DeepSpeed's own mixed precision: 16-bit weights in the ranks, fp32 master copies in the
    # (sharded) optimizer. The backend turns the model's own autocast off under it: the weights
    # already are in that dtype, so autocast would only add a second, per-op mixed precision.
    if scfg.precision == "bf16":
        config["bf16"] = {"enabled": True}
    elif scfg.precision == "fp16":
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
    return config


def resolve(scfg: StrongConfig, world: int, project_root: Path) -> dict[str, Any]:
    """The generated config, or the explicit file, checked against the batch settings."""
    if scfg.deepspeed.config_file is None:
        return generate(scfg, world)
    path = (project_root / scfg.deepspeed.config_file).resolve()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"strong.deepspeed.config_file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"strong.deepspeed.config_file {path} is not valid JSON: {exc}") from None
    config.setdefault("train_batch_size", scfg.batch_size)
    config.setdefault("gradient_accumulation_steps", scfg.deepspeed.grad_accum)
    config.setdefault("train_micro_batch_size_per_gpu", micro_batch(scfg, world))
    config.setdefault("zero_allow_untested_optimizer", True)
    if config["train_batch_size"] != scfg.batch_size:
        raise ConfigError(
            f"{path}: train_batch_size {config['train_batch_size']} differs from strong.batch_size {scfg.batch_size}"
        )
    if config["train_micro_batch_size_per_gpu"] * config["gradient_accumulation_steps"] * world != scfg.batch_size:
        raise ConfigError(f"{path}: micro batch x accumulation x {world} ranks != train_batch_size")
    return config

"""The DeepSpeed JSON config, generated from the typed config (or read from an explicit file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from w2s.core.config import StrongConfig
from w2s.errors import ConfigError


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
    zero: dict[str, Any] = {"stage": ds.stage}
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
        # the optimiser is a torch AdamW handed to the engine: no fused-Adam op to compile
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    # DeepSpeed's own mixed precision: 16-bit weights in the ranks, fp32 master copies in the
    # (sharded) optimizer; the model's autocast then runs on weights already in that dtype.
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

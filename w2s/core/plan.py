"""Memory planning before renting hardware: per-GPU and per-node CPU memory of the strong model's
training states under each ZeRO stage, from DeepSpeed's own estimators.

DeepSpeed ships estimators for ZeRO-2 and ZeRO-3 (with and without offload). Stages 0 and 1 have
none; they follow the same mixed-precision accounting of the ZeRO paper: 2 bytes of fp16
weights and 2 of fp16 gradients per parameter on every GPU, plus 12 bytes of fp32 master weights
and Adam moments, replicated (stage 0) or split across the GPUs (stage 1). Activations come on
top and scale with batch size and sequence length; they are not part of these numbers.
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3


def count_params(model_name: str, num_layers: int | None) -> tuple[int, int]:
    """(total parameters, largest single layer's parameters) without loading any weights."""
    import torch
    from transformers import AutoConfig, AutoModel

    from w2s.core.models.classifier import truncate_layers
    from w2s.core.models.resolve import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_name))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    truncate_layers(model, num_layers)
    total = sum(dict((id(p), p.numel()) for p in model.parameters()).values())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return total, largest


def estimate(total: int, largest: int, gpus_per_node: int, nodes: int) -> list[dict[str, Any]]:
    """One row per (stage, offload) option: GiB per GPU and GiB of CPU memory per node."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import (
        estimate_zero2_model_states_mem_needs,
    )

    n = gpus_per_node * nodes
    rows: list[dict[str, Any]] = [
        {
            "stage": 0,
            "offload": "none",
            "gpu_bytes": 16 * total,
            "cpu_bytes": 4 * total * gpus_per_node,
            "source": "ZeRO paper accounting",
        },
        {
            "stage": 1,
            "offload": "none",
            "gpu_bytes": 4 * total + 12 * total // n,
            "cpu_bytes": 4 * total * gpus_per_node,
            "source": "ZeRO paper accounting",
        },
    ]
    for offload in (False, True):
        cpu, gpu = estimate_zero2_model_states_mem_needs(total, gpus_per_node, nodes, cpu_offload=offload)
        rows.append(
            {
                "stage": 2,
                "offload": "optimizer" if offload else "none",
                "gpu_bytes": gpu,
                "cpu_bytes": cpu,
                "source": "deepspeed estimator",
            }
        )
    for offload, params in ((False, False), (True, False), (True, True)):
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            total, largest, gpus_per_node, nodes, cpu_offload=offload, cpu_offload_params=params
        )
        label = "optimizer+params" if params else ("optimizer" if offload else "none")
        rows.append({"stage": 3, "offload": label, "gpu_bytes": gpu, "cpu_bytes": cpu, "source": "deepspeed estimator"})
    for row in rows:
        row["gpu_gib"] = round(row["gpu_bytes"] / GIB, 3)
        row["cpu_gib"] = round(row["cpu_bytes"] / GIB, 3)
    return rows

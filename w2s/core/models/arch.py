"""What differs between transformer families, in one table: where the blocks live, whether the
model is a decoder (pooled at its last token) and which projections LoRA adapts.

Everything here reads a transformers config or a built model; nothing loads weights.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from w2s.errors import ConfigError

# The attention and MLP projections that `lora.target_modules: auto` adapts, by `model_type`.
# Encoders (BERT-style) name theirs `query/key/value/dense`; MPNet `q/k/v/o`.
LORA_TARGETS: dict[str, list[str]] = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "bert": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "mpnet": ["q", "k", "v", "o", "dense"],
}

# Families whose projections are GPT-2 `Conv1D`s (weights stored in x out): peft must know.
LORA_FAN_IN_FAN_OUT = {"gpt2"}

# Config attributes that hold one entry per layer and must shrink with the layer count.
PER_LAYER_LISTS = ("layer_types",)


def is_decoder(config: Any) -> bool:
    """True for causal LMs (GPT-2, Pythia, Llama, Qwen2, ...), False for bidirectional encoders.

    The saved `architectures` decide when present (a `...ForCausalLM` / `...LMHeadModel`);
    otherwise a model type that also has a masked-LM head (BERT, RoBERTa, MPNet) is an encoder.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return True
    model_type = getattr(config, "model_type", "")
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def num_layers_of(config: Any) -> int:
    """The transformer depth a config declares (`num_hidden_layers`, or GPT-2's `n_layer`)."""
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"model type '{getattr(config, 'model_type', '?')}' declares no layer count")


def blocks(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent, attribute, blocks): the ModuleList of transformer blocks of a base model.

    BERT-style `encoder.layer`, GPT-2 `h`, GPT-NeoX / Llama / Qwen2 `layers`: the ModuleList
    whose length is the config's depth (the largest such list when several match).
    """
    depth = num_layers_of(model.config)
    found: list[tuple[nn.Module, str, nn.ModuleList]] = []
    for _, parent in model.named_modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == depth:
                found.append((parent, attr, child))
    if not found:
        raise ConfigError(
            f"cannot find the {depth} transformer blocks of model type '{getattr(model.config, 'model_type', '?')}' "
            "to truncate (num_layers)"
        )
    return max(found, key=lambda f: sum(p.numel() for p in f[2].parameters()))


def check_num_layers(config: Any, num_layers: int | None) -> None:
    """A one-line error when `num_layers` asks for more blocks than the model has."""
    if num_layers is not None and num_layers > num_layers_of(config):
        raise ConfigError(
            f"num_layers={num_layers} exceeds the {num_layers_of(config)} layers of model type '{config.model_type}'"
        )


def truncate_config(config: Any, num_layers: int | None) -> Any:
    """The config of the first `num_layers` blocks (per-layer lists shortened to match)."""
    if num_layers is None:
        return config
    check_num_layers(config, num_layers)
    config.num_hidden_layers = num_layers  # GPT-2's attribute_map routes this to n_layer
    for name in PER_LAYER_LISTS:
        value = getattr(config, name, None)
        if isinstance(value, list) and len(value) > num_layers:
            setattr(config, name, value[:num_layers])
    return config


def truncate_layers(model: nn.Module, num_layers: int | None) -> nn.Module:
    """Keep the first `num_layers` blocks of any family: a cheaper, weaker model of the same kind."""
    if num_layers is None:
        return model
    check_num_layers(model.config, num_layers)
    parent, attr, layers = blocks(model)
    setattr(parent, attr, layers[:num_layers])
    truncate_config(model.config, num_layers)
    return model


def lora_targets(config: Any, target_modules: list[str] | str) -> list[str]:
    """The module names LoRA adapts: the given list, or the family's projections for `auto`."""
    if target_modules != "auto":
        return list(target_modules)
    model_type = getattr(config, "model_type", "?")
    if model_type not in LORA_TARGETS:
        raise ConfigError(
            f"lora.target_modules=auto does not know model type '{model_type}' "
            f"(known: {', '.join(sorted(LORA_TARGETS))}); list the module names instead"
        )
    return LORA_TARGETS[model_type]

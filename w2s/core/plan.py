"""Memory planning before renting hardware: per-GPU and per-node CPU memory of training the
strong model under each ZeRO stage, fully or with LoRA adapters, plus its activations.

Everything is read from the model's config.json alone: the model is built on the meta device,
which allocates nothing, so even a 72B model is counted in a fraction of a second once
transformers is imported.

Parameters. `params` is the base model `AutoModel` builds, the one w2s trains (no LM head);
the classification head on top, hidden x num_labels + num_labels, is `head_params` and trains
too. `published_params` adds the LM head of a decoder whose embeddings are untied (Pythia,
Qwen2.5-7B and up, Llama-3): the number model cards quote.

Model states, full fine-tuning (bytes per parameter; N parameters, n GPUs in all):

- bf16 / fp16 (the mixed-precision accounting of the ZeRO paper, Rajbhandari et al. 2020):
  2 of 16-bit weights + 2 of 16-bit gradients + 12 of fp32 master weights and Adam m and v.
  Stage 0 keeps all 16 on every GPU, stage 1 shards the 12 (4N + 12N/n). Stages 2 and 3 (with
  and without CPU offload) are DeepSpeed's own estimators (`estimate_zero{2,3}_model_states_mem_needs`).
- fp32: 4 of weights + 4 of gradients + 12 of optimizer state: DeepSpeed's ZeRO optimizer keeps
  its own fp32 copy of each partition besides Adam's m and v, even when the weights already are
  fp32; at stage 0 a plain AdamW updates the weights in place (8). Stage 0: 16N; 1: 8N + 12N/n;
  2: 4N + 16N/n; 3: 20N/n plus the largest layer's gathered weights and gradients (8 bytes per
  parameter). DeepSpeed's estimators assume 16-bit weights, so for fp32 every row is this
  accounting; the offload rows keep DeepSpeed's CPU figure (the offloaded states are fp32 in
  both precisions) with the GPU side at 4 bytes per weight.

Model states with LoRA (P frozen base parameters, T trainable = adapters + head): the frozen
base costs 2 bytes per parameter in bf16 / fp16 and 4 in fp32, with no gradients and no
optimizer state; the trainable parameters follow the accounting above. ZeRO shards the frozen
base only at stage 3 (stages 1 and 2 shard optimizer states and gradients, which it has none
of); stage 3 also gathers the largest layer's weights. CPU per node is each rank's copy of the
weights while it loads them. The optimizer states are too small to be worth offloading, so the
LoRA rows have no offload options. The adapters of a targeted nn.Linear, GPT-2 Conv1D or
nn.Embedding with an in x out weight hold r * (in + out) parameters, exactly what peft adds.

Model states of the plain torch backend (`strong.backend=torch`, the "torch" rows): AdamW on
fp32 trainable weights under autocast, 4 weights + 4 gradients + 8 Adam m and v + 2 for the
16-bit copy of each weight that autocast makes in the forward pass and the backward pass reads:
18 bytes per trainable parameter (16 in fp32, where there is no copy). LoRA adds the frozen base
at 2 bytes per parameter in 16 bits (4 in fp32).

Activations per GPU: the bytes autograd keeps from the forward pass for the backward pass, per
token and layer, for a Llama / Qwen2-style block with PyTorch's scaled_dot_product_attention
(sdpa, what transformers picks where the model supports it). It differs from Korthikanti et al.
2022 ("Reducing Activation Recomputation in Large Transformer Models", section 4.1), whose
s*b*h*(34 + 5*a*s/h) counts eager attention: sdpa's flash and memory-efficient kernels keep no
s x s score matrix, only their inputs, their output and an fp32 log-sum-exp per head. With h the
hidden size, i the MLP width, q the query width (heads x head size), c the bytes of a 16-bit or
fp32 activation and r the bytes of the residual stream (4 where autocast runs over fp32 weights,
the torch backend's full fine-tune; else c):

- each of the two norms: an fp32 copy of its input (RMSNorm computes in fp32; LayerNorm under
  autocast too), 4h, plus the normalised value its weight multiplies, r*h, when it trains;
- attention: the query, key and value as the kernel reads them and its output, 4*c*q (under a
  padding mask transformers repeats grouped key/value heads to the query heads, so every batch
  with padding pays the full width), plus 4 bytes per head; eager attention (a model without
  sdpa, e.g. MPNet) also keeps the score matrices, Korthikanti's 5*a*s*c/2;
- the projections' inputs their weight gradients need, full fine-tune only: c*h for the
  attention's and c*h for the MLP's input projections (autocast over an fp32 stream casts the
  input once per projection: 3 and 2 copies for separate q, k, v and gate, up);
- the MLP: the activation function's input and the down projection's input, 2*c*i, and for a
  gated MLP also the gate's activated value and the up projection (their product needs both),
  4*c*i; with LoRA the down projection's input is kept only by its adapter (below);
- LoRA: each adapter keeps its dropout's output and its 1-byte mask, (c + 1) x its input width,
  and the r-wide output of its first matrix; with adapter dropout 0 the adapters read tensors
  that their projection group shares (q, k, v and o in one attention; gate and up in one MLP),
  counted once per (module, width). The frozen base keeps nothing for weight gradients.

The final norm is counted once; the embeddings, the pooled head, the loss and the backward
pass's transient buffers are not. The micro batch is strong.batch_size / (GPUs x grad_accum),
rounded up. With full gradient checkpointing each layer keeps only its input, r*h per token,
plus one layer's activations while it is recomputed. The torch rows use the torch backend's
activations (fp32 stream under autocast for a full fine-tune), the ZeRO rows the DeepSpeed
engine's (the whole module in the 16-bit dtype, no autocast), the LoRA rows LoRA's.

Checked against peaks measured on one H200 (torch 2.11 + CUDA 13, transformers 5.24, peft 0.21.2,
deepspeed 0.19.8; tests/unit/test_plan_lm.py): a 310M and a 1.2B Qwen2-style decoder, 512 tokens,
micro batch 32, bf16: LoRA at ZeRO-2, -2 % and 0 %; the 310M's full fine-tune at ZeRO-2 and ZeRO-3,
+5 % and +1 %, and on the torch backend +2 % (that run held bf16 weights and Adam states, 8 bytes a
weight, before the loader kept fp32 masters; the torch row's 18 bytes are unmeasured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from w2s.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from w2s.core.config import StrongConfig

GIB = 1024**3

# The rank the LoRA rows are shown at when the config trains every weight (strong.lora.r=0).
REFERENCE_LORA_RANK = 16

# Module name endings that mark a gated MLP (gate and up projections, possibly fused).
GATED_MLP_NAMES = ("gate_proj", "gate_up_proj")


@dataclass(frozen=True)
class ModelSize:
    """What the planner needs to know about a model, read from its config alone."""

    model_type: str
    params: int  # the base model w2s trains (no LM head)
    published_params: int  # plus the LM head when a decoder's embeddings are untied
    largest_layer_params: int
    layers: int
    hidden: int
    heads: int
    intermediate: int
    gated_mlp: bool
    lora_params: int  # adapters added at `lora_r` (0 when LoRA is not planned)
    lora_r: int
    lora_targets: tuple[str, ...]
    head_dim: int = 0  # width of one attention head (0: hidden / heads)
    attention: str = "sdpa"  # the attention implementation transformers picks for the model
    attention_inputs: int = 3  # projections reading the attention's input (3: q, k, v; 1: fused)
    mlp_inputs: int = 2  # projections reading the MLP's input (2: gate and up; 1: fused or ungated)
    # (parent module, input width) of each module LoRA adapts in one block
    lora_inputs: tuple[tuple[str, int], ...] = ()

    @property
    def query_width(self) -> int:
        return self.heads * (self.head_dim or self.hidden // self.heads)


def weight_bytes(precision: str) -> int:
    """Bytes per stored weight (or activation) in the given precision."""
    return 4 if precision == "fp32" else 2


def lora_param_count(model: nn.Module, targets: list[str], r: int) -> int:
    """Parameters LoRA of rank `r` adds to `model` for `targets`, matched the way peft matches them.

    A module matches when its dotted name is a target or ends with `.target`; each matched
    nn.Linear / Conv1D / nn.Embedding gets A (r x in) and B (out x r).
    """
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    total = 0
    for name, module in model.named_modules():
        if not any(name == t or name.endswith("." + t) for t in targets):
            continue
        if not isinstance(module, nn.Linear | Conv1D | nn.Embedding):
            raise ConfigError(f"lora.target_modules matches '{name}', a {type(module).__name__} that LoRA cannot adapt")
        total += r * sum(module.weight.shape)
    if total == 0:
        raise ConfigError(f"lora.target_modules {targets} match no module of {type(model).__name__}")
    return total


def model_config(model_name: str, num_layers: int | None) -> Any:
    """The transformers config of `model_name` (alias, folder or hub id), truncated to `num_layers`."""
    from transformers import AutoConfig

    from w2s.core.models.arch import truncate_config
    from w2s.core.models.resolve import resolve_model

    return truncate_config(AutoConfig.from_pretrained(resolve_model(model_name)), num_layers)


def measure(config: Any, lora_r: int = 0, target_modules: list[str] | str = "auto") -> ModelSize:
    """Parameter counts and shape of the model `config` describes, built on the meta device.

    `lora_r` > 0 also counts the adapters LoRA would add for `target_modules`.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from w2s.core.models.arch import is_decoder, lora_targets, num_layers_of

    targets = lora_targets(config, target_modules) if lora_r else []
    decoder = is_decoder(config)
    # A causal LM carries its LM head (tied or not), which the published sizes include.
    auto = AutoModelForCausalLM if decoder else AutoModel
    with torch.device("meta"):
        full = auto.from_config(config)
    base = full.base_model if decoder else full
    published = sum({id(p): p.numel() for p in full.parameters()}.values())
    params = sum({id(p): p.numel() for p in base.parameters()}.values())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in base.modules())
    hidden = config.hidden_size
    # the MLP width under its family's name (GPT-2 leaves n_inner unset for 4h)
    widths = (getattr(config, name, None) for name in ("intermediate_size", "n_inner", "ffn_dim"))
    intermediate = next((w for w in widths if w), 4 * hidden)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    names = [name for name, _ in base.named_modules()]
    fused_qkv = _has_linear(base, hidden, (heads + 2 * kv_heads) * head_dim)
    gated = any(name.endswith(GATED_MLP_NAMES) for name in names)
    return ModelSize(
        model_type=config.model_type,
        params=params,
        published_params=published,
        largest_layer_params=largest,
        layers=num_layers_of(config),
        hidden=hidden,
        heads=heads,
        intermediate=intermediate,
        gated_mlp=gated,
        lora_params=lora_param_count(base, targets, lora_r) if lora_r else 0,
        lora_r=lora_r,
        lora_targets=tuple(targets),
        head_dim=head_dim,
        attention=str(getattr(base.config, "_attn_implementation", None) or "eager"),
        attention_inputs=1 if fused_qkv else 3,
        mlp_inputs=2 if gated and not any(name.endswith("gate_up_proj") for name in names) else 1,
        lora_inputs=_lora_inputs(base, targets) if lora_r else (),
    )


def _in_out(module: nn.Module) -> tuple[int, int] | None:
    """(input, output) width of a linear layer (nn.Linear, or GPT-2's Conv1D stored in x out)."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]
    return None


def _has_linear(model: nn.Module, width_in: int, width_out: int) -> bool:
    return any(_in_out(m) == (width_in, width_out) for m in model.modules())


def _lora_inputs(base: nn.Module, targets: list[str]) -> tuple[tuple[str, int], ...]:
    """(parent module, input width) of every module of the first block that LoRA adapts."""
    from w2s.core.models.arch import blocks

    out = []
    for name, module in blocks(base)[2][0].named_modules():
        widths = _in_out(module)
        if widths and any(name == t or name.endswith("." + t) for t in targets):
            out.append((name.rpartition(".")[0], widths[0]))
    return tuple(out)


def count_params(model_name: str, num_layers: int | None) -> tuple[int, int]:
    """(total parameters of the base model, largest single layer's parameters) without loading weights."""
    size = measure(model_config(model_name, num_layers))
    return size.params, size.largest_layer_params


def head_params(hidden: int, num_labels: int) -> int:
    """Parameters of the linear classification head w2s puts on the pooled representation."""
    return hidden * num_labels + num_labels


def _with_gib(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["gpu_gib"] = round(row["gpu_bytes"] / GIB, 3)
        row["cpu_gib"] = round(row["cpu_bytes"] / GIB, 3)
    return rows


def estimate(total: int, largest: int, gpus_per_node: int, nodes: int, precision: str = "bf16") -> list[dict[str, Any]]:
    """Full fine-tuning: one row per (stage, offload) option, GiB per GPU and of CPU memory per node."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import (
        estimate_zero2_model_states_mem_needs,
    )

    n = gpus_per_node * nodes
    fp32 = precision == "fp32"
    load_cpu = 4 * total * gpus_per_node  # each rank reads the fp32 checkpoint before moving it
    own = "fp32 accounting" if fp32 else "ZeRO paper accounting"
    rows: list[dict[str, Any]] = [
        {"stage": 0, "offload": "none", "gpu_bytes": 16 * total, "cpu_bytes": load_cpu, "source": own},
        {
            "stage": 1,
            "offload": "none",
            "gpu_bytes": (8 if fp32 else 4) * total + 12 * total // n,
            "cpu_bytes": load_cpu,
            "source": own,
        },
    ]
    for offload in (False, True):
        cpu, gpu = estimate_zero2_model_states_mem_needs(total, gpus_per_node, nodes, cpu_offload=offload)
        if fp32:
            gpu = 4 * total if offload else 4 * total + 16 * total // n
        rows.append(
            {
                "stage": 2,
                "offload": "optimizer" if offload else "none",
                "gpu_bytes": gpu,
                "cpu_bytes": cpu,
                "source": own if fp32 else "deepspeed estimator",
            }
        )
    for offload, params in ((False, False), (True, False), (True, True)):
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            total, largest, gpus_per_node, nodes, cpu_offload=offload, cpu_offload_params=params
        )
        if fp32:
            on_gpu = 0 if params else (4 if offload else 20) * total // n
            gpu = 8 * largest + on_gpu
        label = "optimizer+params" if params else ("optimizer" if offload else "none")
        rows.append(
            {
                "stage": 3,
                "offload": label,
                "gpu_bytes": gpu,
                "cpu_bytes": cpu,
                "source": own if fp32 else "deepspeed estimator",
            }
        )
    return _with_gib(rows)


def estimate_lora(
    frozen: int, trainable: int, largest: int, gpus_per_node: int, nodes: int, precision: str
) -> list[dict[str, Any]]:
    """LoRA: one row per ZeRO stage for a frozen base of `frozen` and `trainable` adapter + head parameters."""
    n = gpus_per_node * nodes
    w = weight_bytes(precision)
    rows = []
    for stage in range(4):
        # the trainable parameters' weights, gradients and optimizer states (see the module docstring)
        opt = 8 if precision == "fp32" and stage == 0 else 12
        if stage == 3:
            gpu = (frozen * w + trainable * (2 * w + opt)) // n + largest * w
        else:
            replicated = frozen * w + trainable * (w + (w if stage < 2 else 0) + (opt if stage == 0 else 0))
            sharded = trainable * ((w if stage == 2 else 0) + (opt if stage > 0 else 0))
            gpu = replicated + sharded // n
        rows.append(
            {
                "stage": stage,
                "offload": "none",
                "gpu_bytes": gpu,
                "cpu_bytes": (frozen * w + trainable * 4) * gpus_per_node,
                "source": "LoRA accounting",
            }
        )
    return _with_gib(rows)


def micro_batch(batch_size: int, world: int, grad_accum: int) -> int:
    """Examples per GPU per forward pass: the batch split over GPUs and accumulation steps, rounded up."""
    return -(-batch_size // (world * grad_accum))


def layer_activation_bytes(
    size: ModelSize, seq_len: int, precision: str, lora_dropout: float | None = None, fp32_weights: bool = False
) -> int:
    """Bytes one block keeps for the backward pass per token (see the module docstring).

    `lora_dropout`: None for a full fine-tune, else the adapters' dropout. `fp32_weights`: the
    trained weights are fp32 under 16-bit autocast (the torch backend's)."""
    c = weight_bytes(precision)
    lora = lora_dropout is not None
    stream = 4 if fp32_weights and not lora else c
    h, i, q = size.hidden, size.intermediate, size.query_width
    norms = 2 * (4 * h + (0 if lora else stream * h))
    attention = 4 * c * q + 4 * size.heads
    if size.attention == "eager":  # the score matrices, and the output's contiguous copy
        attention += 5 * size.heads * seq_len * c // 2 + c * q
    mlp = (4 if size.gated_mlp else 2) * c * i
    if not lora:
        copies = stream != c  # autocast casts an fp32 input once per projection
        inputs = c * h * ((size.attention_inputs if copies else 1) + (size.mlp_inputs if copies else 1))
        return norms + attention + inputs + mlp
    if lora_dropout:
        adapters = (c + 1) * sum(width for _, width in size.lora_inputs)
    elif fp32_weights:  # peft casts the input to the fp32 adapter's dtype, autocast back: one copy each
        adapters = c * sum(width for _, width in size.lora_inputs)
    else:
        adapters = c * sum(width for _, width in set(size.lora_inputs))
    adapters += c * size.lora_r * len(size.lora_inputs)
    return norms + attention + mlp - c * i + adapters


def activation_bytes(
    size: ModelSize,
    batch: int,
    seq_len: int,
    precision: str,
    lora_dropout: float | None = None,
    fp32_weights: bool = False,
) -> tuple[int, int]:
    """(without, with full gradient checkpointing) activation bytes per GPU; see the module docstring."""
    tokens = batch * seq_len
    layer = tokens * layer_activation_bytes(size, seq_len, precision, lora_dropout, fp32_weights)
    stream = 4 if fp32_weights and lora_dropout is None else weight_bytes(precision)
    final_norm = tokens * (4 + (0 if lora_dropout is not None else stream)) * size.hidden
    return size.layers * layer + final_norm, size.layers * tokens * stream * size.hidden + layer + final_norm


def estimate_torch(frozen: int, trainable: int, precision: str) -> dict[str, Any]:
    """The plain torch backend (one GPU, no ZeRO): fp32 trainable weights, gradients and Adam
    states plus autocast's 16-bit weight copies; a LoRA model's frozen base in its own dtype."""
    w = weight_bytes(precision)
    per_trainable = 16 if precision == "fp32" else 18
    row = {
        "stage": "torch",
        "offload": "none",
        "gpu_bytes": frozen * w + trainable * per_trainable,
        "cpu_bytes": frozen * w + trainable * 4,
        "source": "torch backend accounting",
    }
    return _with_gib([row])[0]


def _lora_rows(
    scfg: StrongConfig, size: ModelSize, head: int, batch: int, tokens: int, gpus_per_node: int, nodes: int, pick: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The LoRA rows (every ZeRO stage and the torch backend, with activations) and their
    activations; none when the model has no known LoRA targets."""
    if not size.lora_r:
        return [], {}
    precision = scfg.precision
    trainable = size.lora_params + head
    zero_lora = activation_bytes(size, batch, tokens, precision, lora_dropout=scfg.lora.dropout)
    torch_lora = activation_bytes(
        size, scfg.batch_size, tokens, precision, lora_dropout=scfg.lora.dropout, fp32_weights=precision != "fp32"
    )
    rows = estimate_lora(size.params, trainable, size.largest_layer_params, gpus_per_node, nodes, precision)
    for row in rows:
        row["gpu_with_activations_gib"] = round((row["gpu_bytes"] + zero_lora[pick]) / GIB, 3)
    rows.append(estimate_torch(size.params, trainable, precision))
    rows[-1]["gpu_with_activations_gib"] = round((rows[-1]["gpu_bytes"] + torch_lora[pick]) / GIB, 3)
    return rows, {"lora_without_checkpointing_bytes": zero_lora[0], "lora_with_checkpointing_bytes": zero_lora[1]}


def plan(
    scfg: StrongConfig, gpus_per_node: int, nodes: int, seq_len: int | None = None, num_labels: int = 2
) -> dict[str, Any]:
    """The whole memory plan of the strong model as JSON-ready data (what `w2s plan --json` prints)."""
    from w2s.core.models.arch import LORA_TARGETS

    if min(gpus_per_node, nodes, seq_len or 1) < 1:
        raise ConfigError(f"--gpus, --nodes and --seq-len must be at least 1 (got {gpus_per_node}, {nodes}, {seq_len})")
    precision = scfg.precision  # strong.deepspeed.precision, the older spelling, is folded into it
    config = model_config(scfg.model, scfg.num_layers)
    configured_lora = scfg.lora.r > 0
    # Without LoRA in the config, the LoRA rows are a comparison at a reference rank; a family
    # whose projections are unknown just goes without them (an error only when LoRA is asked for).
    comparable = scfg.lora.target_modules != "auto" or config.model_type in LORA_TARGETS
    rank = scfg.lora.r or (REFERENCE_LORA_RANK if comparable else 0)
    size = measure(config, rank, scfg.lora.target_modules)
    head = head_params(size.hidden, num_labels)
    world = gpus_per_node * nodes
    batch = micro_batch(scfg.batch_size, world, scfg.deepspeed.grad_accum)
    tokens = seq_len or scfg.max_length
    pick = 1 if scfg.gradient_checkpointing else 0
    # the DeepSpeed engine's micro batch, 16-bit module; the torch backend's whole batch on one GPU
    zero_act = activation_bytes(size, batch, tokens, precision)
    torch_act = activation_bytes(size, scfg.batch_size, tokens, precision, fp32_weights=precision != "fp32")
    rows = estimate(size.params + head, size.largest_layer_params, gpus_per_node, nodes, precision)
    for row in rows:
        row["gpu_with_activations_gib"] = round((row["gpu_bytes"] + zero_act[pick]) / GIB, 3)
    rows.append(estimate_torch(0, size.params + head, precision))
    rows[-1]["gpu_with_activations_gib"] = round((rows[-1]["gpu_bytes"] + torch_act[pick]) / GIB, 3)
    lora_rows, lora_act = _lora_rows(scfg, size, head, batch, tokens, gpus_per_node, nodes, pick)
    without, with_ckpt = zero_act
    return {
        "model": scfg.model,
        "model_type": size.model_type,
        "params": size.params,
        "published_params": size.published_params,
        "largest_layer_params": size.largest_layer_params,
        "head_params": head,
        "layers": size.layers,
        "hidden_size": size.hidden,
        "attention_heads": size.heads,
        "intermediate_size": size.intermediate,
        "gated_mlp": size.gated_mlp,
        "precision": precision,
        "gpus_per_node": gpus_per_node,
        "nodes": nodes,
        "rows": rows,
        "lora": {
            "r": size.lora_r,
            "configured": configured_lora,
            "target_modules": list(size.lora_targets),
            "adapter_params": size.lora_params,
            "trainable_params": size.lora_params + head,
        }
        if size.lora_r
        else None,
        "lora_rows": lora_rows,
        "activations": {
            "micro_batch": batch,
            "seq_len": tokens,
            "gradient_checkpointing": scfg.gradient_checkpointing,
            "without_checkpointing_bytes": without,
            "with_checkpointing_bytes": with_ckpt,
            "without_checkpointing_gib": round(without / GIB, 3),
            "with_checkpointing_gib": round(with_ckpt / GIB, 3),
            "attention": size.attention,
            "torch_backend_without_checkpointing_bytes": torch_act[0],
            "torch_backend_with_checkpointing_bytes": torch_act[1],
            **lora_act,
        },
    }

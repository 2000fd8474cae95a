"""A pretrained transformer (encoder or causal LM) with a linear head over a pooled text vector.

One code path for every family: the head reads the last real token of a decoder (the only
position that has attended to the whole text) or the attention-masked mean of an encoder, under
left or right padding alike. LoRA adapters (peft), 16-bit autocast and gradient checkpointing
are options of the same model.

Saved as a folder holding `model.safetensors` (weights only, never a pickle), the transformer's
`config.json`, the tokenizer files and `w2s_model.json` (labels, max length, pooling, precision
and, for a LoRA model, the adapter settings and the base it was adapted from). A LoRA model is
saved as base plus adapter in one folder, so it loads offline and predicts exactly as trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from w2s.core.config import EncoderTrainConfig
from w2s.errors import ConfigError
from w2s.io import atomic_path, write_text

META_FILE = "w2s_model.json"
WEIGHTS_FILE = "model.safetensors"
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over real tokens (the attention mask, not `input_ids != 0`)."""
    mask = attention_mask.unsqueeze(-1).bool()
    # where(), not a product: fully masked pad positions of a left-padded decoder may hold NaN
    summed = torch.where(mask, hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device)).sum(1)
    return summed / mask.sum(1).clamp(min=1).to(hidden.dtype)


def last_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of each row's last real token, whichever side the padding is on."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (positions * attention_mask).argmax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


POOLERS = {"mean": mean_pool, "last": last_pool}


class TextClassifier(nn.Module):
    """Transformer + pooling + linear head; `forward` returns class logits (fp32).

    `decoder`: position ids are derived from the attention mask, so a left-padded text sees the
    same positions as a right-padded one. `autocast`: the forward pass runs in that 16-bit dtype
    on the weights' device while the head's logits come back in fp32.
    """

    def __init__(
        self,
        encoder: Any,
        num_labels: int,
        dropout: float = 0.1,
        pooling: str = "mean",
        decoder: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        self.pooling = pooling
        self.decoder = decoder
        self.autocast = autocast

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled text vector (what the head reads), in fp32."""
        kwargs: dict[str, Any] = {}
        if self.decoder:
            kwargs["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            kwargs["use_cache"] = False  # no KV cache: we run one forward pass per text
        with torch.autocast(input_ids.device.type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            return POOLERS[self.pooling](out.last_hidden_state, attention_mask).float()

    def embed_layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """The pooled output of each of the first `layers[i]` blocks, concatenated (fp32), from one
        forward pass. For an encoder, block n's output is exactly what the model truncated to n
        blocks returns (each block ends in its own LayerNorm); a decoder's last hidden state has a
        final norm applied that the intermediate ones lack, so decoders are refused."""
        if self.decoder:
            raise ConfigError("embeddings of several truncations from one pass hold only for encoders")
        with torch.autocast(input_ids.device.type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            pool = POOLERS[self.pooling]
            return torch.cat([pool(out.hidden_states[n], attention_mask).float() for n in layers], dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.embed(input_ids, attention_mask)
        # the head is fp32, except inside a DeepSpeed bf16/fp16 engine, which casts every weight
        return self.head(self.dropout(pooled.to(self.head.weight.dtype))).float()


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout probability in the model (encoder and head) to `p`."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def resolve_pooling(pooling: str, decoder: bool) -> str:
    """`auto` is the last token for decoders and the masked mean for encoders."""
    if pooling != "auto":
        return pooling
    return "last" if decoder else "mean"


def check_precision(precision: str) -> None:
    """Refuse a 16-bit precision the device cannot run, before any work."""
    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("precision=fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision=bf16 is not supported by this GPU (use fp16 or fp32)")


def check_options(cfg: EncoderTrainConfig, where: str) -> None:
    """Every model option of `cfg` checked against the model's config alone (no weights): the
    model exists, `num_layers` is within its depth, LoRA knows its projections, the device runs
    the precision. Errors name the config key (`where`: e.g. `strong`, `weak.encoder`)."""
    from w2s.core.models.arch import check_num_layers, is_decoder, lora_targets
    from w2s.core.models.resolve import check_model

    config = check_model(cfg.model)
    shared = getattr(getattr(cfg, "frozen", None), "embed_layers", None) or []
    try:
        check_num_layers(config, cfg.num_layers)
        for n in shared:
            check_num_layers(config, n)
        if shared and is_decoder(config):
            raise ConfigError(
                "frozen.embed_layers: one embedding pass serves several truncations of an encoder only "
                "(a decoder's last hidden state is normed, its intermediate ones are not)"
            )
        if cfg.lora.r:
            lora_targets(config, cfg.lora.target_modules)
        check_precision(cfg.precision)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _ensure_pad_token(tokenizer: Any) -> None:
    """Causal-LM tokenizers ship without a pad token: reuse EOS (or id 0). Padded positions are
    masked out and never pooled, so which id fills them does not matter, and the embedding
    matrix keeps its size."""
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    else:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)


def wrap_lora(encoder: Any, r: int, alpha: float, dropout: float, target_modules: list[str]) -> Any:
    """The transformer wrapped with LoRA adapters (peft): only the adapters train in it. Used both
    to add fresh adapters and to rebuild a saved model's before its weights are loaded."""
    from peft import LoraConfig, get_peft_model

    from w2s.core.models.arch import LORA_FAN_IN_FAN_OUT

    lora = LoraConfig(
        r=r,
        lora_alpha=cast(int, alpha),  # peft annotates int; any positive number works
        lora_dropout=dropout,
        target_modules=target_modules,
        bias="none",
        fan_in_fan_out=encoder.config.model_type in LORA_FAN_IN_FAN_OUT,
    )
    try:
        return get_peft_model(encoder, lora)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules {target_modules}: {str(exc).splitlines()[0][:200]}") from None


def add_lora(encoder: Any, cfg: EncoderTrainConfig) -> Any:
    """Fresh LoRA adapters of `cfg.lora` on the transformer (targets resolved for its family)."""
    from w2s.core.models.arch import lora_targets

    targets = lora_targets(encoder.config, cfg.lora.target_modules)
    return wrap_lora(encoder, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, targets)


def build_classifier(cfg: EncoderTrainConfig, num_labels: int, seed: int) -> tuple[Any, TextClassifier]:
    """(tokenizer, classifier) from a pretrained transformer and the model options of `cfg`:
    its first `num_layers` blocks (the rest are never loaded), the pooling, LoRA adapters, the
    precision and gradient checkpointing. The adapters and the head are seeded."""
    from w2s.core.models.arch import is_decoder
    from w2s.core.models.resolve import load_pretrained

    check_precision(cfg.precision)
    # A LoRA base is frozen: it needs no fp32 master copy, so it is held in the 16-bit dtype.
    base_dtype = DTYPES[cfg.precision] if cfg.lora.r else None
    tokenizer, encoder = load_pretrained(cfg.model, cfg.num_layers, base_dtype)
    _ensure_pad_token(tokenizer)
    decoder = is_decoder(encoder.config)
    if cfg.gradient_checkpointing:
        # non-reentrant: works when the embeddings are frozen (LoRA) and keeps dropout's RNG
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.r:
        torch.manual_seed(seed)  # the adapters' random init, identical in every rank and rerun
        encoder = add_lora(encoder, cfg)
    torch.manual_seed(seed)
    model = TextClassifier(
        encoder,
        num_labels,
        pooling=resolve_pooling(cfg.pooling, decoder),
        decoder=decoder,
        autocast=DTYPES[cfg.precision],
    )
    return tokenizer, model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def lora_settings(model: TextClassifier) -> dict[str, Any] | None:
    """The LoRA adapter settings of a peft-wrapped transformer (None without adapters)."""
    peft_config = getattr(model.encoder, "peft_config", None)
    if not peft_config:
        return None
    conf = peft_config["default"]
    return {
        "r": conf.r,
        "alpha": conf.lora_alpha,
        "dropout": conf.lora_dropout,
        "target_modules": sorted(conf.target_modules),
    }


def save_classifier(model: TextClassifier, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> None:
    """Write weights (safetensors), transformer config, tokenizer and metadata into `folder`.

    A LoRA model is saved as base plus adapter: the frozen base in its own dtype and the adapters
    beside it in one weights file, with the adapter settings in the metadata, so loading
    rebuilds exactly the trained function (a merge into a 16-bit base would round the adapters)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    base = model.encoder.get_base_model() if hasattr(model.encoder, "get_base_model") else model.encoder
    base.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    base_dtype = next(p.dtype for n, p in model.encoder.named_parameters() if "lora_" not in n)
    full = {
        "pooling": model.pooling,
        "decoder": model.decoder,
        "precision": next((k for k, v in DTYPES.items() if v == model.autocast), "fp32"),
        "base_dtype": str(base_dtype).removeprefix("torch."),
        "lora": lora_settings(model),
        **meta,
    }
    write_text(folder / META_FILE, json.dumps(full, indent=2, sort_keys=True))


def _served_autocast(precision: str) -> torch.dtype | None:
    """The dtype the saved model predicts in: as trained, except fp16 off a GPU (fp32 there)."""
    if precision == "fp16" and not torch.cuda.is_available():
        return None
    return DTYPES[precision]


def load_classifier(folder: str | Path) -> tuple[TextClassifier, Any, dict[str, Any]]:
    """Rebuild a saved classifier (weights included) in eval mode, offline."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    config = AutoConfig.from_pretrained(folder)
    encoder = AutoModel.from_config(config, dtype=getattr(torch, meta.get("base_dtype", "float32")))
    lora = meta.get("lora")
    if lora:
        encoder = wrap_lora(encoder, lora["r"], lora["alpha"], lora["dropout"], lora["target_modules"])
    model = TextClassifier(
        encoder,
        meta["num_labels"],
        pooling=meta.get("pooling", "mean"),
        decoder=meta.get("decoder", False),
        autocast=_served_autocast(meta.get("precision", "fp32")),
    )
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    _ensure_pad_token(tokenizer)
    return model, tokenizer, cast(dict[str, Any], meta)

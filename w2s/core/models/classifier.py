"""A transformer encoder with a linear head over the attention-masked mean of its hidden states.

Saved as a folder holding `model.safetensors` (weights only, never a pickle), the encoder's
`config.json`, the tokenizer files and `w2s_model.json` (labels, max length, layer count), so
loading reproduces the saved predictions exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from w2s.io import atomic_path, write_text

META_FILE = "w2s_model.json"
WEIGHTS_FILE = "model.safetensors"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over real tokens (the attention mask, not `input_ids != 0`)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TextClassifier(nn.Module):
    """Encoder + mean pooling + linear head; `forward` returns class logits."""

    def __init__(self, encoder: Any, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout probability in the model (encoder and head) to `p`."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def truncate_layers(encoder: Any, num_layers: int | None) -> Any:
    """Keep the first `num_layers` transformer blocks (a cheaper, weaker model of the same family)."""
    if num_layers is None:
        return encoder
    layers = encoder.encoder.layer
    if num_layers > len(layers):
        raise ValueError(f"num_layers={num_layers} exceeds the model's {len(layers)} layers")
    encoder.encoder.layer = layers[:num_layers]
    encoder.config.num_hidden_layers = num_layers
    return encoder


def build_classifier(model_name: str, num_labels: int, num_layers: int | None, seed: int):
    """Fresh classifier from a pretrained encoder; the head is seeded for reproducibility."""
    from w2s.core.models.resolve import load_pretrained

    tokenizer, encoder = load_pretrained(model_name)
    truncate_layers(encoder, num_layers)
    torch.manual_seed(seed)
    return tokenizer, TextClassifier(encoder, num_labels)


def save_classifier(model: TextClassifier, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> None:
    """Write weights (safetensors), encoder config, tokenizer and metadata into `folder`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    cast(Any, model.encoder).config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_text(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True))


def load_classifier(folder: str | Path) -> tuple[TextClassifier, Any, dict[str, Any]]:
    """Rebuild a saved classifier (weights included) in eval mode."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    config = AutoConfig.from_pretrained(folder)
    encoder = AutoModel.from_config(config)
    model = TextClassifier(encoder, meta["num_labels"])
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder), meta

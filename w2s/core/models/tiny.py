"""Small causal LMs built from a config, for machines that reach no model hub.

A byte-level BPE tokenizer is trained on the given texts with `tokenizers` and, like GPT-2's,
Pythia's, Llama's and Qwen's, it has no pad token. The model is a GPT-2, GPT-NeoX (Pythia),
Llama or Qwen2 of the requested width and depth, randomly initialised (seeded) and optionally
pretrained for a few next-token steps on the same texts. Both are written with
`save_pretrained`, so the folder loads exactly as a downloaded checkpoint does, through the same
loading, padding, pooling, LoRA, precision and ZeRO code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from w2s.errors import ConfigError

FAMILIES = ("gpt2", "gpt_neox", "llama", "qwen2")
EOS = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (GPT-2 style, EOS but no pad token) trained on `texts`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS])
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS)


def lm_config(family: str, vocab_size: int, hidden: int, layers: int, heads: int, max_positions: int) -> Any:
    """The transformers config of a `family` decoder of this size (MLP width 4x, or the
    gated-MLP families' 8/3x rounded up to a multiple of 16, as Llama sizes it)."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

    if family not in FAMILIES:
        raise ConfigError(f"unknown LM family '{family}' (one of {', '.join(FAMILIES)})")
    if hidden % heads:
        raise ConfigError(f"hidden size {hidden} is not divisible by {heads} heads")
    common: dict[str, Any] = {"vocab_size": vocab_size, "bos_token_id": 0, "eos_token_id": 0}
    if family == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=max_positions, **common)
    if family == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=max_positions,
            **common,
        )
    gated = 16 * math.ceil(8 * hidden / 3 / 16)
    cls = LlamaConfig if family == "llama" else Qwen2Config
    return cls(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),  # grouped-query attention, as in Llama-3 and Qwen2.5
        intermediate_size=gated,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        **common,
    )


def build_tiny_lm(
    folder: Path,
    texts: Sequence[str],
    family: str = "qwen2",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 2000,
    max_positions: int = 256,
    pretrain_steps: int = 0,
    seed: int = 0,
    tokenizer: Any = None,
) -> Path:
    """Write a `family` causal LM and its tokenizer into `folder` (save_pretrained layout).

    `tokenizer`: reuse one (models of one family share theirs, as real size series do);
    otherwise one is trained on `texts`. `pretrain_steps` > 0 runs that many next-token AdamW
    steps (batch 32, 64 tokens) on `texts`, so that a wider or deeper model is also a better
    one; 0 leaves the random initialisation."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = tokenizer if tokenizer is not None else train_tokenizer(texts, vocab_size)
    config = lm_config(family, len(tok), hidden, layers, heads, max_positions)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if pretrain_steps:
        _pretrain(model, tok, texts, pretrain_steps, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _pretrain(model: Any, tokenizer: Any, texts: Sequence[str], steps: int, seed: int) -> None:
    """Next-token prediction on `texts`: 64-token windows, batch 32, AdamW 1e-3, cosine decay."""
    import numpy as np
    import torch

    ids = [t for t in tokenizer(list(texts))["input_ids"] if len(t) > 1]
    rng = np.random.default_rng(seed)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    model.train()
    for _ in range(steps):
        batch = [ids[i][:64] for i in rng.integers(0, len(ids), size=32)]
        width = max(len(b) for b in batch)
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, b in enumerate(batch):
            input_ids[row, : len(b)] = torch.tensor(b)
            mask[row, : len(b)] = 1
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sched.step()
    model.eval()


def parse_size(spec: str) -> tuple[int, int, int]:
    """`HxL` or `HxLxA` (hidden width x layers [x attention heads]) -> (hidden, layers, heads).

    Without A the heads are hidden // 32 (head width 32), at least 2, as small real models have."""
    parts = spec.strip().lower().split("x")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(
            f"size '{spec}' is not HIDDENxLAYERS or HIDDENxLAYERSxHEADS with positive integers (e.g. 64x2)"
        )
    hidden, layers = int(parts[0]), int(parts[1])
    heads = int(parts[2]) if len(parts) == 3 else max(2, hidden // 32)
    if hidden % heads:
        raise ConfigError(f"size '{spec}': hidden size {hidden} is not divisible by {heads} heads")
    return hidden, layers, heads


def series_folder(root: Path, family: str, hidden: int, layers: int) -> Path:
    """The predictable folder of one member of a size series: `<root>/<family>-h<hidden>-l<layers>`."""
    return root / f"{family}-h{hidden}-l{layers}"


def build_series(
    root: Path,
    texts: Sequence[str],
    sizes: Sequence[str],
    family: str = "qwen2",
    vocab_size: int = 2000,
    max_positions: int = 256,
    pretrain_steps: int = 0,
    seed: int = 0,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """A size series of one `family`: one tokenizer trained on `texts`, shared by every member,
    and one model per `HxL[xA]` size in `series_folder(root, ...)`, each pretrained for
    `pretrain_steps` next-token steps on `texts` with the same seed (so the members differ in
    size only). Returns one record per member (folder, hidden, layers, heads, parameters);
    `progress(record)` is called after each member is written."""
    parsed = [parse_size(s) for s in sizes]  # every size is checked before any work
    if family not in FAMILIES:
        raise ConfigError(f"unknown LM family '{family}' (one of {', '.join(FAMILIES)})")
    if not texts:
        raise ConfigError("no texts to train the tokenizer and pretrain on")
    tokenizer = train_tokenizer(texts, vocab_size)
    records = []
    for hidden, layers, heads in parsed:
        folder = build_tiny_lm(
            series_folder(root, family, hidden, layers),
            texts,
            family=family,
            hidden=hidden,
            layers=layers,
            heads=heads,
            vocab_size=vocab_size,
            max_positions=max_positions,
            pretrain_steps=pretrain_steps,
            seed=seed,
            tokenizer=tokenizer,
        )
        config = lm_config(family, len(tokenizer), hidden, layers, heads, max_positions)
        record = {
            "folder": str(folder),
            "family": family,
            "hidden": hidden,
            "layers": layers,
            "heads": heads,
            "params": _count(config),
            "pretrain_steps": pretrain_steps,
        }
        records.append(record)
        if progress is not None:
            progress(record)
    return records


def _count(config: Any) -> int:
    """Parameters of the causal LM `config` describes (tied embeddings counted once), on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum({id(p): p.numel() for p in model.parameters()}.values())

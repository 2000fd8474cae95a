"""How models are loaded for training: the dtype of their trainable weights and the attention
implementation, whatever the checkpoint was saved in."""

from __future__ import annotations

from pathlib import Path

import torch

from w2s.core.config import EncoderTrainConfig
from w2s.core.models.classifier import build_classifier, load_classifier, save_classifier


def _bf16_checkpoint(folder: Path) -> Path:
    """A tiny Qwen2 decoder saved in bf16, as most hub checkpoints are."""
    from transformers import AutoModelForCausalLM

    from w2s.core.models.tiny import lm_config, train_tokenizer

    AutoModelForCausalLM.from_config(lm_config("qwen2", 300, 32, 1, 4, 64), dtype=torch.bfloat16).save_pretrained(
        folder
    )
    train_tokenizer([f"w{i} w{i + 1} w{2 * i}" for i in range(500)], 300).save_pretrained(folder)
    return folder


def test_a_16_bit_checkpoint_fine_tunes_fp32_weights_and_a_lora_base_stays_16_bit(tmp_path):
    folder = str(_bf16_checkpoint(tmp_path / "lm"))
    _, full = build_classifier(EncoderTrainConfig(model=folder, precision="bf16"), 2, seed=0)
    # every trained weight has its fp32 master; autocast runs the products in bf16
    assert {p.dtype for p in full.parameters()} == {torch.float32} and full.autocast == torch.bfloat16
    _, lora = build_classifier(EncoderTrainConfig(model=folder, precision="bf16", lora={"r": 4}), 2, seed=0)
    frozen = {p.dtype for p in lora.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16} and {p.dtype for p in lora.parameters() if p.requires_grad} == {torch.float32}


def test_a_decoder_trains_and_predicts_with_sdpa_attention(tiny_lms, tmp_path):
    tokenizer, model = build_classifier(EncoderTrainConfig(model=str(tiny_lms["big"]), lora={"r": 4}), 2, seed=0)
    # scaled_dot_product_attention keeps no s x s score matrix (what `w2s plan` assumes)
    assert model.encoder.config._attn_implementation == "sdpa"
    save_classifier(model, tokenizer, tmp_path / "m", {"num_labels": 2, "max_length": 16})
    loaded, _, _ = load_classifier(tmp_path / "m")
    assert loaded.encoder.config._attn_implementation == "sdpa"
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}

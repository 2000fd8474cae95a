"""Causal LMs on the classifier's one code path: tiny randomly initialised GPT-2, GPT-NeoX (Pythia)
and Llama models with a real byte-level BPE tokenizer that has no pad token, through pooling under
left and right padding, truncation to fewer blocks, LoRA, bf16, gradient checkpointing and the
saved model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from w2s.core.config import EncoderTrainConfig
from w2s.core.losses import xent
from w2s.core.models.arch import blocks
from w2s.core.models.batching import collate, encode, predict_logits
from w2s.core.models.classifier import (
    build_classifier,
    check_options,
    load_classifier,
    save_classifier,
    set_dropout,
    trainable_parameters,
)
from w2s.core.train import train
from w2s.errors import ConfigError

FAMILIES = ["gpt2", "gpt_neox", "llama"]
TEXTS = [
    "Polls close at eight tonight in most states",
    "vote",
    "A much longer message about the election, the debates and who is ahead in the swing states now",
    "Make America great again!",
]


def _lm(tiny_lms, family: str, **options):
    cfg = EncoderTrainConfig(model=str(tiny_lms[family]), **options)
    tokenizer, model = build_classifier(cfg, 2, seed=0)
    return cfg, tokenizer, model


def _left_padded(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, width - len(x) :] = torch.tensor(x)
        mask[i, width - len(x) :] = 1
    return input_ids, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_a_decoder_pools_its_last_real_token_the_same_under_left_and_right_padding(tiny_lms, family):
    _, tokenizer, model = _lm(tiny_lms, family)
    model.eval()
    assert model.decoder and model.pooling == "last"
    enc = encode(tokenizer, TEXTS, 64)
    assert len(set(enc.lengths)) > 1, "the batch must need padding"
    right = model(*collate(enc.ids, enc.pad_id))
    left = model(*_left_padded(enc.ids, enc.pad_id))
    alone = torch.cat([model(*collate([x], enc.pad_id)) for x in enc.ids])
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=1e-5)
    # and it is the last token: changing an earlier token changes the pooled state, padding does not
    with torch.no_grad():
        states = model.embed(*collate(enc.ids, enc.pad_id))
        lone = model.embed(*collate([enc.ids[2]], enc.pad_id))
    torch.testing.assert_close(states[2:3], lone, atol=1e-5, rtol=1e-5)


def test_a_tokenizer_without_a_pad_token_pads_with_eos_and_keeps_its_embeddings(tiny_lms):
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tiny_lms["llama"])
    assert saved.pad_token is None, "like GPT-2, Pythia, Llama and Qwen tokenizers"
    _, tokenizer, model = _lm(tiny_lms, "llama")
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert model.encoder.get_input_embeddings().num_embeddings == len(saved)


def test_an_encoder_keeps_mean_pooling(minilm_2layer):
    _, model = minilm_2layer
    assert model.pooling == "mean" and not model.decoder


@pytest.mark.parametrize("family", [*FAMILIES, "big"])
def test_num_layers_keeps_the_first_pretrained_blocks_of_any_family(tiny_lms, family):
    _, _, full = _lm(tiny_lms, family)
    _, _, cut = _lm(tiny_lms, family, num_layers=1)
    assert len(blocks(cut.encoder)[2]) == 1 and cut.encoder.config.num_hidden_layers == 1
    first_full = blocks(full.encoder)[2][0].state_dict()
    for name, weight in blocks(cut.encoder)[2][0].state_dict().items():
        assert torch.equal(weight, first_full[name]), f"block 0 {name} was not loaded from the checkpoint"


def test_lora_trains_only_the_adapters_and_the_head(tiny_lms):
    cfg, tokenizer, model = _lm(
        tiny_lms, "gpt2", lora={"r": 4, "dropout": 0.0}, epochs=2, batch_size=2, lr=1e-2, warmup_frac=0.0
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    n_train, n_total = trainable_parameters(model)
    assert n_train < 0.2 * n_total
    enc = encode(tokenizer, TEXTS, 64)
    train(model, enc, np.eye(2, dtype=np.float32)[[0, 1, 0, 1]], cfg, 0, xent)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.startswith("head.") for k in changed) and any("lora_B" in k for k in changed)
    assert all("lora_" in k or k.startswith("head.") for k in changed), sorted(changed - trainable)[:3]


def test_bf16_loss_is_within_tolerance_of_fp32(tiny_lms):
    losses = {}
    for precision in ("fp32", "bf16"):
        _, tokenizer, model = _lm(tiny_lms, "big", precision=precision)
        model.eval()
        batch = collate(encode(tokenizer, TEXTS, 64).ids, tokenizer.pad_token_id)
        target = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
        logits = model(*batch)
        assert logits.dtype == torch.float32, "logits come back in fp32 whatever the compute dtype"
        losses[precision] = float(xent(logits, target, 0.0))
    assert losses["bf16"] != losses["fp32"], "bf16 must actually compute in bf16"
    assert abs(losses["bf16"] - losses["fp32"]) < 0.02 * abs(losses["fp32"]), losses


def test_a_lora_base_is_held_in_bf16_with_fp32_adapters_and_head(tiny_lms):
    _, _, model = _lm(tiny_lms, "llama", lora={"r": 4}, precision="bf16")
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" not in n and not n.startswith("head.")} == {torch.bfloat16}
    assert {d for n, d in dtypes.items() if "lora_" in n or n.startswith("head.")} == {torch.float32}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_lms):
    grads = []
    for checkpointing in (False, True):
        _, tokenizer, model = _lm(tiny_lms, "gpt_neox", gradient_checkpointing=checkpointing)
        set_dropout(model, 0.0)
        model.train()
        batch = collate(encode(tokenizer, TEXTS, 64).ids, tokenizer.pad_token_id)
        xent(model(*batch), torch.full((4, 2), 0.5), 0.0).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_a_lora_model_is_saved_as_base_plus_adapter_and_reloads_predicting_the_same(tiny_lms, tmp_path):
    _, tokenizer, model = _lm(tiny_lms, "llama", lora={"r": 4}, precision="bf16")
    with torch.no_grad():  # trained-looking adapters and head, not their init
        for name, p in model.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.normal_(0, 0.5)
    before = predict_logits(model, encode(tokenizer, TEXTS, 64), 2)
    save_classifier(model, tokenizer, tmp_path / "m", {"num_labels": 2, "max_length": 64})
    meta = json.loads((tmp_path / "m" / "w2s_model.json").read_text())
    assert meta["pooling"] == "last" and meta["precision"] == "bf16" and meta["base_dtype"] == "bfloat16"
    assert meta["lora"]["r"] == 4 and "q_proj" in meta["lora"]["target_modules"]
    loaded, tok2, _ = load_classifier(tmp_path / "m")
    after = predict_logits(loaded, encode(tok2, TEXTS, 64), 2)
    np.testing.assert_array_equal(after, before)


def test_bad_model_options_are_one_line_errors_naming_the_key(tiny_lms, tmp_path):
    unknown = tmp_path / "opt"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "opt", "num_hidden_layers": 2}))
    cases = [
        (EncoderTrainConfig(model=str(tiny_lms["gpt2"]), num_layers=9), "strong.num_layers=9 exceeds the 3 layers"),
        (EncoderTrainConfig(model=str(unknown), lora={"r": 8}), "strong.lora.target_modules=auto does not know"),
        (EncoderTrainConfig(model=str(tiny_lms["gpt2"]), precision="fp16"), "strong.precision=fp16 needs a CUDA"),
    ]
    for cfg, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            check_options(cfg, "strong")
        assert "\n" not in str(err.value)

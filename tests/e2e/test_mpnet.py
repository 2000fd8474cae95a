"""mpnet-base assembled from its five PyPI part wheels, loaded offline, usable as a strong model."""

import torch

from w2s.core.config import EncoderTrainConfig
from w2s.core.models.batching import encode, predict_logits
from w2s.core.models.classifier import build_classifier
from w2s.core.models.mpnet import assemble

from conftest import assert_truncations_share_one_pass


def test_mpnet_assembles_once_and_loads_as_a_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_MODEL_CACHE", str(tmp_path / "models"))
    folder = assemble()
    assert (folder / "model.safetensors").stat().st_size > 400_000_000
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert assemble() == folder and (folder / "model.safetensors").stat().st_mtime == mtime

    tokenizer, model = build_classifier(EncoderTrainConfig(model="mpnet-base", num_layers=2), 3, seed=0)
    assert sum(p.numel() for p in model.parameters()) > 30_000_000
    assert len(model.encoder.encoder.layer) == 2
    logits = predict_logits(model, encode(tokenizer, ["a text", "another, longer text"], 32), 2)
    assert logits.shape == (2, 3) and torch.isfinite(torch.from_numpy(logits)).all()


def test_one_pass_embeds_every_truncation_of_mpnet_exactly(tmp_path):
    assert_truncations_share_one_pass("mpnet-base", [2, 12], tmp_path)

"""Frozen-feature mode: embeddings computed once per content hash, only the head trains, and the
saved classifier (encoder + trained head) reproduces the predictions from raw text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.core.models.batching import encode, predict_logits, softmax
from w2s.core.models.classifier import load_classifier
from w2s.pipeline.sequence import run_steps
from w2s.project import Project


def test_frozen_mode_trains_the_head_on_cached_embeddings(project: Path) -> None:
    cfg = load_config(project / "params.yaml", ["strong.mode=frozen", "strong.frozen.epochs=20"])
    cache = ArtifactCache(project / ".w2s" / "cache")
    result = run_steps(cfg, Project(project), project / "out", cache)

    entries = list((project / ".w2s" / "cache" / "embeddings").iterdir())
    assert len(entries) == 1, "student and ceiling share one embedding pass"
    assert result.student.info["mode"] == "frozen"
    assert result.metrics["ceiling_acc"] > 0.6, "a linear probe on MiniLM features separates the authors"

    # the saved model is the full text classifier: its encoder is untouched, its head trained
    model, tokenizer, meta = load_classifier(Path(result.student.dir) / "model")
    splits = pd.read_parquet(next((project / "out").glob("splits.parquet")))
    test = splits[splits["split"] == "test"]
    probs = softmax(predict_logits(model, encode(tokenizer, test["text"].tolist(), meta["max_length"]), 64))
    stored = pd.read_parquet(Path(result.student.dir) / "preds.parquet")
    stored = np.stack(stored[stored["split"] == "test"]["probs"].to_numpy())
    np.testing.assert_allclose(probs, stored, atol=1e-4)

    from w2s.core.models.resolve import load_pretrained

    _, pristine = load_pretrained("minilm-l6")
    pretrained, kept = pristine.state_dict(), model.encoder.state_dict()
    assert kept and set(kept) <= set(pretrained), "the encoder is the pretrained model's first blocks"
    for name, weight in kept.items():
        assert torch.equal(weight, pretrained[name]), f"encoder weight {name} changed"

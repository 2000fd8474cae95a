"""Frozen-feature mode: embeddings computed once per content hash, only the head trains, and the
saved classifier (encoder + trained head) reproduces the predictions from raw text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.core.links import softmax
from w2s.core.models.batching import encode, predict_logits
from w2s.core.models.classifier import load_classifier
from w2s.pipeline.sequence import run_steps
from w2s.project import Project

from conftest import make_project

FROZEN = ["strong.mode=frozen", "strong.frozen.epochs=20"]


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path) -> tuple[Path, Any]:
    """One frozen-mode run in a fresh project (cold caches), shared by this module's tests."""
    project = make_project(tmp_path_factory.mktemp("frozen") / "proj", bundled_dir)
    cfg = load_config(project / "params.yaml", FROZEN)
    return project, run_steps(cfg, Project(project), project / "out", ArtifactCache(project / ".w2s" / "cache"))


def test_frozen_mode_trains_the_head_on_cached_embeddings(frozen_run: tuple[Path, Any]) -> None:
    project, result = frozen_run

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


def test_squared_loss_head_reports_simplex_probabilities_and_the_budget_trains_on_its_own_settings(
    frozen_run: tuple[Path, Any],
) -> None:
    """strong.loss=squared on frozen features: a least-squares head whose outputs, projected onto
    the simplex, are its probabilities, in the run's predictions and in the saved model alike; and
    strong.budget gives the budget baseline its own epochs while every other model is reused."""
    project, first = frozen_run
    cache = ArtifactCache(project / ".w2s" / "cache")
    cfg = load_config(project / "params.yaml", [*FROZEN, "strong.loss=squared", "strong.budget.epochs=5"])
    second = run_steps(cfg, Project(project), project / "b", cache)
    assert second.reused() == {"weak": True, "w2s": False, "ceiling": True, "budget": False}
    steps = {run.budget.info["steps"] for run in (first, second)}
    assert len(steps) == 2 and second.budget.info["steps"] < first.budget.info["steps"], steps
    # without overrides the budget model is the one trained before: its key did not change
    again = run_steps(load_config(project / "params.yaml", FROZEN), Project(project), project / "c", cache)
    assert again.reused()["budget"] and again.budget.key == first.budget.key

    stored = pd.read_parquet(Path(second.student.dir) / "preds.parquet")
    probs = np.stack(stored["probs"].to_numpy())
    assert (probs >= 0).all() and np.allclose(probs.sum(1), 1.0)
    model, tokenizer, meta = load_classifier(Path(second.student.dir) / "model")
    assert meta["link"] == "simplex"
    from w2s.core.links import simplex_projection
    from w2s.core.models.batching import predict_texts

    splits = pd.read_parquet(project / "b" / "splits.parquet")
    test = splits[splits["split"] == "test"]
    stored_test = np.stack(stored[stored["split"] == "test"]["probs"].to_numpy())
    raw = predict_logits(model, encode(tokenizer, test["text"].tolist(), meta["max_length"]), 64)
    np.testing.assert_allclose(stored_test, simplex_projection(raw), atol=1e-4)
    assert np.abs(stored_test - softmax(raw)).max() > 0.05, "the head's outputs are probabilities, not logits"
    served = predict_texts(model, tokenizer, test["text"].tolist(), meta["max_length"], link=meta["link"])
    np.testing.assert_allclose(served, stored_test, atol=1e-4)
    m = second.metrics
    assert m["misfit"] is not None and m["gain_minus_misfit"] == pytest.approx(m["actual_gain"] - m["misfit"])
    assert m["actual_gain_kl"] is not None and 0.0 <= m["strong_budget_val_acc"] <= 1.0

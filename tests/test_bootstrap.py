"""Bootstrapping: weak -> intermediate (truncated strong model) -> strong, on the real tiny task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.core.models.classifier import load_classifier
from w2s.pipeline.runner import run_config
from w2s.project import Project

pytestmark = pytest.mark.slow


def test_bootstrap_chain_trains_the_student_on_the_intermediate_labels(project: Path) -> None:
    cfg = load_config(project / "params.yaml", ["method=bootstrap", "bootstrap.intermediate_layers=[1]"])
    cache = ArtifactCache(project / ".w2s" / "cache")
    result = run_config(cfg, Project(project), project / "out", cache)

    inter_files = list((project / "out").glob("*-intermediate-1l.parquet"))
    labels = result.supervision.labels
    assert len(inter_files) == 1
    inter = pd.read_parquet(inter_files[0])
    assert list(inter.columns) == ["id", "text", "weak_probs", "weak_label", "split"]
    assert labels.path == str(inter_files[0]), "the student consumed the intermediate's labels"
    assert len(labels.md5) == 32

    # the intermediate is the strong model truncated to one block
    key = labels.supervisor["cache_key"]
    assert [lab for _, lab in result.supervision.chain] == [labels]
    model, _, _ = load_classifier(cache.path("strong", key) / "model")
    assert len(model.encoder.encoder.layer) == 1

    naive = run_config(load_config(project / "params.yaml"), Project(project), project / "out-naive", cache)
    assert naive.weak.reused and naive.ceiling.reused, "weak model and ceiling are shared with naive"
    assert naive.student.key != result.student.key
    assert result.metrics["weak_acc"] == naive.metrics["weak_acc"]

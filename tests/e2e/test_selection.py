"""Weak-model selection on the real tiny task is blind to transfer truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.pipeline import data_steps
from w2s.pipeline.weak_selection import (
    Selection,
    choose,
    evaluate_candidates,
    select_weak,
)
from w2s.project import Project


def test_selection_is_unchanged_when_transfer_truth_is_scrambled(project: Path) -> None:
    cfg = load_config(
        project / "params.yaml",
        [
            "selection.candidates={sharp: {kind: tfidf, tfidf: {C: 10}}, "
            "tiny: {kind: tfidf, tfidf: {max_features: 10}}}",
            "selection.folds=3",
            "strong.frozen.epochs=10",
        ],
    )
    cache = ArtifactCache(project / ".w2s" / "cache")
    out = project / "out"
    out.mkdir()
    table = data_steps.ingest(cfg, Project(project), out)
    splits_ref, _ = data_steps.make_splits(table, cfg, out)
    rows = evaluate_candidates(splits_ref, table, cfg, cache, out)
    chosen = choose(rows)
    assert select_weak(splits_ref, table, cfg, cache, out) == Selection(chosen.name, [r.row() for r in rows])
    assert {r.name for r in rows} == {"sharp", "tiny"}
    assert chosen.predicted_err == min(r.predicted_err for r in rows)
    assert all(r.student.info["mode"] == "frozen" for r in rows)
    tiny = next(r for r in rows if r.name == "tiny")
    sharp = next(r for r in rows if r.name == "sharp")
    assert tiny.err_w > sharp.err_w, "a 10-word vocabulary is a worse weak supervisor"

    # scramble every ground-truth label outside weak_train: the selection must not move
    splits = pd.read_parquet(splits_ref.path)
    outside = splits["split"] != "weak_train"
    splits.loc[outside, "label"] = splits.loc[outside, "label"].sample(frac=1, random_state=1).to_numpy()
    scrambled = out / "scrambled.parquet"
    splits.to_parquet(scrambled, index=False)
    rows2 = evaluate_candidates(replace(splits_ref, path=str(scrambled)), table, cfg, cache, out)
    assert choose(rows2).name == chosen.name
    # everything the choice reads is unchanged; only the hindsight diagnostic reads test labels
    hindsight = "probe_test_acc_hindsight"
    assert [{k: v for k, v in r.row().items() if k != hindsight} for r in rows2] == [
        {k: v for k, v in r.row().items() if k != hindsight} for r in rows
    ]

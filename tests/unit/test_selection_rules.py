"""Weak-model selection by predicted strong error (Err_w - misfit), blind to transfer truth."""

from __future__ import annotations

import pandas as pd
import pytest

from w2s.core.refs import ModelRef
from w2s.pipeline.weak_selection import (
    Candidate,
    Selection,
    choose,
    without_transfer_truth,
)

REF = ModelRef("weak", "", "k", False)


def _cand(name, err_w, fit, hindsight=0.8):
    return Candidate(name, err_w, fit, err_w - fit, hindsight, REF, REF, "md5")


def test_choose_takes_the_lowest_predicted_strong_error():
    # b has the worst weak error but the student moves furthest from its labels
    picked = choose([_cand("a", 0.20, 0.02), _cand("b", 0.30, 0.15), _cand("c", 0.25, 0.05)])
    assert picked.name == "b" and picked.predicted_err == pytest.approx(0.15)


def test_regret_is_the_chosen_probes_shortfall_against_the_best_in_hindsight():
    cands = [_cand("a", 0.20, 0.02, 0.86), _cand("b", 0.30, 0.15, 0.83), _cand("c", 0.25, 0.05, 0.84)]
    picked = choose(cands)  # b: the lowest predicted error, not the best probe
    selection = Selection(picked.name, [c.row() for c in cands])
    assert selection.metrics() == pytest.approx(
        {"selection_chosen_acc": 0.83, "selection_best_acc": 0.86, "selection_regret": 0.03}
    )
    assert Selection("a", [c.row() for c in cands]).metrics()["selection_regret"] == 0.0


def test_blind_splits_keep_only_the_weak_budget_labels():
    splits = pd.DataFrame(
        {
            "id": list("abcd"),
            "text": list("wxyz"),
            "label": list("pqpq"),
            "split": ["weak_train", "transfer", "val", "test"],
        }
    )
    blind = without_transfer_truth(splits)
    assert blind["label"].iloc[0] == "p" and blind["label"].iloc[1:].isna().all()

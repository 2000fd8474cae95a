"""Weak-model selection by predicted strong error (Err_w - misfit), blind to transfer truth."""

from __future__ import annotations

import pandas as pd
import pytest

from w2s.core.refs import ModelRef
from w2s.pipeline.weak_selection import (
    Candidate,
    choose,
    without_transfer_truth,
)

REF = ModelRef("weak", "", "k", False)


def _cand(name, err_w, fit):
    return Candidate(name, err_w, fit, err_w - fit, REF, REF, "md5")


def test_choose_takes_the_lowest_predicted_strong_error():
    # b has the worst weak error but the student moves furthest from its labels
    picked = choose([_cand("a", 0.20, 0.02), _cand("b", 0.30, 0.15), _cand("c", 0.25, 0.05)])
    assert picked.name == "b" and picked.predicted_err == pytest.approx(0.15)


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

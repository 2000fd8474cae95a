"""The hardened-label control: argmax or temperature-sharpened weak labels, same argmax."""

from __future__ import annotations

import numpy as np
import pytest

from w2s.config import load_config
from w2s.methods.hardened import sharpen

P = np.array([[0.6, 0.4], [0.2, 0.8], [0.5001, 0.4999]])


def test_temperature_zero_is_the_one_hot_argmax():
    np.testing.assert_array_equal(sharpen(P, 0.0), [[1, 0], [0, 1], [1, 0]])


def test_a_temperature_sharpens_below_one_and_leaves_the_labels_at_one():
    np.testing.assert_allclose(sharpen(P, 1.0), P, atol=1e-12)
    half = sharpen(P, 0.5)  # p^2 renormalised: 0.36 / (0.36 + 0.16)
    assert half[0, 0] == pytest.approx(0.36 / 0.52)
    np.testing.assert_allclose(half.sum(1), 1.0)
    assert (half.argmax(1) == P.argmax(1)).all() and (half.max(1) >= P.max(1)).all()
    assert (sharpen(P, 2.0).max(1) <= P.max(1)).all(), "T > 1 softens"


def test_a_negative_temperature_is_a_config_error():
    from w2s.errors import ConfigError

    with pytest.raises(ConfigError, match="hardened.temperature"):
        load_config(None, ["method=hardened", "hardened.temperature=-1"])

import math

import torch

from w2s.losses import LOSSES


def test_xent_matches_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> [0.25, 0.75]
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert abs(LOSSES["xent"](logits, target, 0.3).item() - expected) < 1e-6


def test_xent_is_minimised_by_the_target_distribution():
    target = torch.tensor([[0.2, 0.3, 0.5]])
    at_target = LOSSES["xent"](target.log(), target, 0.0)
    elsewhere = LOSSES["xent"](torch.zeros(1, 3), target, 0.0)
    assert at_target < elsewhere

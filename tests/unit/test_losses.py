"""Each loss pinned to values computed by hand."""

import math

import numpy as np
import pytest
import torch

from w2s.core.links import link_of, probabilities
from w2s.core.losses import LOSSES, LogConf, Product, make_loss


def _ce(target, probs):
    return -sum(t * math.log(p) for t, p in zip(target, probs, strict=False))


def test_registry_has_the_four_losses_and_builds_a_fresh_instance_per_run():
    from w2s.core.config import StrongConfig

    assert set(LOSSES) == {"xent", "logconf", "product", "squared"}
    # the config's choices are the registry's, and every loss's settings section exists
    assert set(StrongConfig.model_fields["loss"].annotation.__args__) == set(LOSSES)
    with pytest.raises(KeyError, match="unknown loss 'hinge'"):
        make_loss("hinge")
    scfg = StrongConfig(loss="logconf", logconf={"aux_coef": 0.3, "buffer_size": 8})
    a, b = make_loss("logconf", scfg.logconf), make_loss("logconf", scfg.logconf)
    assert a is not b and a.aux_coef == 0.3 and a._p0.maxlen == 8
    a(torch.zeros(4, 2), torch.full((4, 2), 0.5), 0.5)
    assert len(a._p0) == 4 and len(b._p0) == 0, "no state is shared between two runs' losses"


def test_xent_matches_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> [0.25, 0.75]
    target = torch.tensor([[0.5, 0.5]])
    assert make_loss("xent")(logits, target, 0.3).item() == pytest.approx(_ce([0.5, 0.5], [0.25, 0.75]))


@pytest.mark.parametrize(
    "step_frac, expected", [(0.0, 0.0), (0.05, 0.125), (0.1, 0.25), (0.2, 0.5), (0.5, 0.5), (1.0, 0.5)]
)
def test_logconf_ramps_linearly_to_aux_coef(step_frac, expected):
    assert LogConf(aux_coef=0.5, warmup_frac=0.2).coef(step_frac) == pytest.approx(expected)


def test_logconf_binary_hardening_matches_the_weak_prior():
    # student P(class 0) = 0.9, 0.6, 0.4, 0.2; weak prior of class 1 = 0.5
    p0 = torch.tensor([0.9, 0.6, 0.4, 0.2])
    logits = torch.stack([p0.log(), (1 - p0).log()], dim=1)
    weak = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.3, 0.7]])
    loss = LogConf(aux_coef=0.5, warmup_frac=0.2, buffer_size=0)
    hard = loss.harden(torch.softmax(logits, 1), weak)
    # threshold = median of p0 (linear interpolation) = 0.5 -> rows 0,1 are class 0, rows 2,3 class 1
    assert hard.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    # at step_frac 0.1 the weight is 0.25: target = 0.75 * weak + 0.25 * hard
    value = loss(logits, weak, 0.1).item()
    targets = [
        [0.75 * w0 + 0.25 * h0, 0.75 * w1 + 0.25 * h1]
        for (w0, w1), (h0, h1) in zip(weak.tolist(), hard.tolist(), strict=False)
    ]
    expected = sum(_ce(t, [p, 1 - p]) for t, p in zip(targets, p0.tolist(), strict=False)) / 4
    assert value == pytest.approx(expected, rel=1e-5)


def test_logconf_at_step_zero_equals_xent():
    logits = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    weak = torch.softmax(torch.randn(5, 2, generator=torch.Generator().manual_seed(1)), 1)
    assert LogConf()(logits, weak, 0.0).item() == pytest.approx(make_loss("xent")(logits, weak, 0.0).item())


def test_logconf_buffer_sets_the_threshold_for_tiny_batches():
    loss = LogConf(buffer_size=4)
    p0s = [0.9, 0.8, 0.3, 0.2]
    for p in p0s:  # four single-row batches fill the buffer
        logits = torch.tensor([[math.log(p), math.log(1 - p)]])
        loss(logits, torch.tensor([[0.5, 0.5]]), 0.5)
    # a lone row with P(class 0) = 0.7 is compared with the buffered rows, not with itself
    probs = torch.tensor([[0.7, 0.3]])
    hard = loss.harden(probs, torch.tensor([[0.5, 0.5]]))
    assert hard.tolist() == [[1.0, 0.0]]  # 0.7 is above the pooled median (0.7)
    assert len(loss._p0) == 4  # bounded


def test_logconf_multiclass_hardens_by_argmax():
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    hard = LogConf().harden(probs, torch.full((2, 3), 1 / 3))
    assert hard.tolist() == [[0, 1, 0], [1, 0, 0]]


def test_product_target_and_loss():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p_s = [0.25, 0.75]
    weak = torch.tensor([[0.6, 0.4]])
    prod = Product(weak_exp=1.0, strong_exp=1.0)
    # t ∝ [0.25 * 0.6, 0.75 * 0.4] = [0.15, 0.30] -> [1/3, 2/3]
    assert prod.target(logits, weak).tolist()[0] == pytest.approx([1 / 3, 2 / 3])
    assert prod(logits, weak, 0.5).item() == pytest.approx(_ce([1 / 3, 2 / 3], [0.25, 0.75]))
    # strong_exp = 0 recovers plain cross-entropy on the weak labels
    assert Product(strong_exp=0.0)(logits, weak, 0.5).item() == pytest.approx(_ce([0.6, 0.4], [0.25, 0.75]))


# ---- squared loss (Charikar et al.'s setting) and output links ---------------------------------


def test_squared_loss_is_the_sum_of_squares_of_the_raw_outputs_to_the_labels():
    outputs = torch.tensor([[0.7, 0.1], [0.2, 1.0]])
    target = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = ((0.3**2 + 0.1**2) + (0.3**2 + 0.5**2)) / 2
    loss = make_loss("squared")
    assert loss(outputs, target, 0.4).item() == pytest.approx(expected)
    assert link_of(loss) == "simplex" and link_of(make_loss("xent")) == "softmax"


def test_simplex_projection_is_the_euclidean_projection_and_never_moves_away_from_the_simplex():
    rng = np.random.default_rng(0)
    v = rng.normal(scale=0.7, size=(200, 4)) + 0.25
    p = probabilities(v, "simplex")
    assert (p >= 0).all() and np.allclose(p.sum(1), 1.0)
    assert (p.argmax(1) == v.argmax(1)).all(), "the argmax (the predicted class) is kept"
    inside = rng.dirichlet([1, 1, 1, 1], size=200)
    np.testing.assert_allclose(probabilities(inside, "simplex"), inside, atol=1e-12)
    # the closest point of the simplex: no random point of it is nearer to v
    others = rng.dirichlet([1, 1, 1, 1], size=(500,))
    for row, proj in zip(v[:20], p[:20], strict=True):
        assert np.sum((row - proj) ** 2) <= np.min(np.sum((row - others) ** 2, axis=1)) + 1e-12
    # non-expansive towards any point of the simplex (a label): squared errors only shrink
    labels = rng.dirichlet([1, 1, 1, 1], size=200)
    assert (np.sum((p - labels) ** 2, 1) <= np.sum((v - labels) ** 2, 1) + 1e-12).all()
    np.testing.assert_allclose(probabilities(v), np.exp(v) / np.exp(v).sum(1, keepdims=True))
    with pytest.raises(KeyError, match="unknown output link 'identity'"):
        probabilities(v, "identity")


def test_a_linear_head_trained_with_the_squared_loss_is_the_least_squares_fit():
    """The frozen head (HeadOnly) trained with `squared` converges to the closed-form least-squares
    solution: a linear model fit by squared loss, the convex class the misfit theorem is about."""
    from w2s.core.config import EncoderTrainConfig
    from w2s.core.frozen import Embedded
    from w2s.core.train import train

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    labels = rng.dirichlet([1, 1, 1], size=300).astype(np.float32)
    torch.manual_seed(0)
    head = torch.nn.Linear(5, 3)
    cfg = EncoderTrainConfig(epochs=400, batch_size=300, lr=0.05, weight_decay=0.0, warmup_frac=0.0, evals_per_epoch=1)
    train(head, Embedded(torch.from_numpy(x)), labels, cfg, seed=0, loss_fn=make_loss("squared"))
    design = np.hstack([x, np.ones((300, 1))])
    solution = np.linalg.lstsq(design, labels, rcond=None)[0]
    with torch.no_grad():
        fitted = head(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fitted, design @ solution, atol=2e-3)
    np.testing.assert_allclose(fitted.sum(1), 1.0, atol=2e-3)  # least squares of rows summing to 1 sums to 1

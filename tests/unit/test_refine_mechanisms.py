"""Each label-refining mechanism on data where its effect is known in advance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from w2s.core.config import EncoderTrainConfig
from w2s.core.frozen import Embedded
from w2s.core.perturbation import flip_rate, irrelevant, perturb_text
from w2s.core.train import train
from w2s.methods.base import assert_blind
from w2s.methods.contrastive import contrastive_labels
from w2s.methods.corrector import CorrectorConfig, correct, fit_corrector
from w2s.methods.ensemble import EnsembleLoss, initial_weights, mixture
from w2s.methods.selective import choose_tau, selective_labels
from w2s.methods.smooth import knn_graph, label_spreading, normalised, smooth_labels


def clusters(n_per: int, k: int, dim: int = 16, spread: float = 0.3, seed: int = 0):
    """`k` well-separated Gaussian clusters; returns (vectors, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 5
    y = np.repeat(np.arange(k), n_per)
    return centres[y] + rng.normal(scale=spread, size=(len(y), dim)), y


def noisy_onehot(y: np.ndarray, k: int, flip: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(y)) < flip
    noisy = np.where(flipped, (y + rng.integers(1, k, len(y))) % k, y)
    return np.eye(k)[noisy] * 0.8 + 0.2 / k, flipped


# ---- graph smoothing -------------------------------------------------------------------------


def test_knn_graph_is_symmetric_without_self_loops():
    x, _ = clusters(20, 2)
    w = knn_graph(x, 5, chunk=7)  # chunking must not change the graph
    assert (w != w.T).nnz == 0
    assert w.diagonal().sum() == 0
    assert (np.asarray(w.sum(1)).ravel() >= 5).all()
    assert (knn_graph(x, 5) != w).nnz == 0


def test_label_spreading_with_mu_zero_returns_the_labels():
    x, y = clusters(10, 3)
    probs, _ = noisy_onehot(y, 3, 0.3)
    out, _ = label_spreading(normalised(knn_graph(x, 4)), probs, mu=0.0)
    assert np.allclose(out, probs / probs.sum(1, keepdims=True))


def test_label_spreading_repairs_flipped_labels_on_separated_clusters():
    x, y = clusters(60, 3)
    probs, flipped = noisy_onehot(y, 3, 0.25)
    assert flipped.mean() > 0.15
    before = float(np.mean(probs.argmax(1) == y))
    smoothed, info = smooth_labels(x, probs, k=8, mu=0.9)
    after = float(np.mean(smoothed.argmax(1) == y))
    assert before < 0.85 and after > 0.98, (before, after)
    assert np.allclose(smoothed.sum(1), 1.0)
    assert info["argmax_changed_frac"] == pytest.approx(np.mean(smoothed.argmax(1) != probs.argmax(1)))
    repaired = smoothed.argmax(1)[flipped] == y[flipped]
    assert repaired.mean() > 0.95, "the flipped examples are the ones that changed"


def _inputs(x: np.ndarray, splits: list[str]):
    """The two things smoothing reads from a refinement's inputs: target rows and their embeddings."""
    from types import SimpleNamespace

    targets = pd.DataFrame({"id": [f"r{i}" for i in range(len(x))], "split": splits})
    return SimpleNamespace(targets=targets, embed=lambda rows: x[rows.index.to_numpy()])


def test_inductive_smoothing_keeps_test_rows_out_of_the_graph_and_labels_them_by_extension():
    from w2s.methods.smooth import SmoothConfig, smooth_inputs

    x, y = clusters(60, 3)
    probs, _ = noisy_onehot(y, 3, 0.25)
    splits = ["transfer"] * 120 + ["val"] * 30 + ["test"] * 30
    c = SmoothConfig(k=8, mu=0.9)
    out, info = smooth_inputs(_inputs(x, splits), probs, c)
    assert info["graph_rows"] == 150
    # moving and relabelling every test row changes no training label: they are not in the graph
    x2, probs2 = x.copy(), probs.copy()
    x2[150:] = np.random.default_rng(1).normal(size=x2[150:].shape)
    probs2[150:] = probs2[150:, ::-1]
    out2, _ = smooth_inputs(_inputs(x2, splits), probs2, c)
    np.testing.assert_array_equal(out[:150], out2[:150])
    transductive, _ = smooth_inputs(_inputs(x2, splits), probs2, SmoothConfig(k=8, mu=0.9, transductive=True))
    assert not np.allclose(transductive[:150], out[:150]), "in the transductive graph they do"
    # the extension repairs test rows from their training neighbours, and rows sum to one
    assert np.mean(out[150:].argmax(1) == y[150:]) > np.mean(probs[150:].argmax(1) == y[150:])
    np.testing.assert_allclose(out.sum(1), 1.0)


# ---- weak ensembles (RAVEN) ------------------------------------------------------------------


def test_entropy_init_prefers_the_confident_member():
    sharp = np.tile([[0.95, 0.05]], (10, 1))
    flat = np.tile([[0.55, 0.45]], (10, 1))
    w = initial_weights(np.stack([sharp, flat], 1), "entropy")
    assert w[0] > w[1] and w.sum() == pytest.approx(1.0)
    assert initial_weights(np.stack([sharp, flat], 1), "uniform").tolist() == [0.5, 0.5]


def test_ensemble_weights_move_to_the_accurate_teacher_when_the_other_is_noise():
    x, y = clusters(100, 2, dim=8, spread=1.0, seed=3)
    rng = np.random.default_rng(4)
    accurate = np.eye(2)[y] * 0.9 + 0.05
    noise = rng.dirichlet([1.0, 1.0], size=len(y))
    members = np.stack([accurate, noise], axis=1).astype(np.float32)  # N x M x K
    loss = EnsembleLoss(initial_weights(members, "uniform"), lr=0.5, freeze_frac=0.1, easy_frac=0.3)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    cfg = EncoderTrainConfig(epochs=6, batch_size=20, lr=0.05, warmup_frac=0.0)
    train(model, Embedded(torch.as_tensor(x, dtype=torch.float32)), members, cfg, seed=0, loss_fn=loss)
    first, last = loss.history[0]["weights"], loss.history[-1]["weights"]
    assert first == pytest.approx([0.5, 0.5])
    assert last[0] > 0.9, f"weights ended at {last}"
    frozen = [h for h in loss.history if h["step_frac"] < 0.1]
    assert frozen and all(h["weights"] == first for h in frozen), "weights stay put while frozen"
    easy = [h for h in loss.history if h["step_frac"] < 0.3]
    assert all(h["easy_rows"] < 20 for h in easy), "early steps learn only where members agree"
    assert np.allclose(mixture(np.array(last), members.astype(np.float64)).sum(1), 1.0)


def test_a_common_gradient_does_not_move_the_weights():
    loss = EnsembleLoss(np.array([0.7, 0.3]), lr=1.0, freeze_frac=0.0, easy_frac=0.0)
    same = torch.tensor([[[0.8, 0.2], [0.8, 0.2]]] * 4)  # identical members: no evidence
    loss(torch.zeros(4, 2), same, 0.5)
    assert loss.weights.tolist() == pytest.approx([0.7, 0.3])


# ---- corrector -------------------------------------------------------------------------------


def test_corrector_at_initialisation_reproduces_the_weak_labels_exactly():
    x, y = clusters(30, 3)
    weak = np.random.default_rng(0).dirichlet([1, 1, 1], size=len(y))
    model, losses = fit_corrector(x, weak, y, CorrectorConfig(steps=0), seed=0)
    assert losses == []
    assert np.allclose(correct(model, x, weak), weak, atol=1e-12)


def test_corrector_learns_a_systematic_weak_error_from_out_of_fold_labels():
    x, y = clusters(80, 2, spread=0.5)
    weak = np.eye(2)[y] * 0.8 + 0.1
    wrong = x[:, 0] > np.median(x[:, 0])  # the weak model swaps the labels in one region
    weak[wrong] = weak[wrong][:, ::-1]
    budget = np.arange(0, len(y), 2)
    model, _ = fit_corrector(x[budget], weak[budget], y[budget], CorrectorConfig(steps=300), seed=0)
    held = np.arange(1, len(y), 2)
    before = np.mean(weak[held].argmax(1) == y[held])
    after = np.mean(correct(model, x[held], weak[held]).argmax(1) == y[held])
    assert after > before + 0.2 and after > 0.9, (before, after)


# ---- contrastive labels ----------------------------------------------------------------------


def test_contrastive_labels_equal_post_labels_at_alpha_one():
    rng = np.random.default_rng(0)
    post = rng.dirichlet([5, 5, 5], size=50)
    post = post[(post >= 0.1 * post.max(1, keepdims=True)).all(1)]  # every class plausible
    pre = rng.dirichlet([1, 1, 1], size=len(post))
    assert np.allclose(contrastive_labels(post, pre, alpha=1.0), post)


def test_contrastive_labels_drop_implausible_classes_and_amplify_what_training_added():
    post = np.array([[0.6, 0.35, 0.05]])
    pre = np.array([[0.4, 0.55, 0.05]])  # training moved mass from class 1 to class 0
    out = contrastive_labels(post, pre, alpha=0.5)
    assert out[0, 2] == 0.0, "below 0.1 x max: implausible"
    assert out[0, 0] > post[0, 0] / post[0, :2].sum(), "the class training favoured gains mass"
    uniform = np.full_like(post, 1 / 3)
    assert np.allclose(contrastive_labels(post, uniform, 0.5), contrastive_labels(post, post, 1.0)), (
        "a uniform pre is a constant shift and does nothing"
    )


# ---- selective W2S / P(IK) -------------------------------------------------------------------


def test_tau_choice_never_does_worse_than_the_weak_labels_on_the_budget():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    weak = np.eye(2)[y] * 0.7 + 0.15
    self_label = 1 - y  # always wrong: the best gate uses no self-labels at all
    tau = choose_tau(rng.random(100), self_label, weak, y)
    assert tau == float("inf")


def test_pik_gate_self_labels_where_the_strong_head_knows_and_weak_labels_elsewhere():
    # Strong features separate the classes in region A only; region B is noise to the head,
    # while the weak labels are right everywhere but soft.
    rng = np.random.default_rng(0)
    n = 400
    region_a = rng.random(n) < 0.5
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 6))
    x[:, 0] += np.where(region_a, 4 * (2 * y - 1), 0.0)
    x[:, 1] += np.where(region_a, 3.0, -3.0)  # the probe can tell the regions apart
    weak = np.eye(2)[y] * 0.6 + 0.2
    weak[~region_a & (rng.random(n) < 0.3)] = [0.5, 0.5]
    budget, target = np.arange(0, 200), np.arange(200, n)
    res = selective_labels(x[budget], y[budget], weak[budget], x[target], weak[target], 2, "pik", None, 5, 1.0, 0)
    gate = res.gate
    assert gate[region_a[target]].mean() > 0.8
    assert gate[~region_a[target]].mean() < 0.2
    labels = res.probs.argmax(1)
    assert np.mean(labels[gate] == y[target][gate]) > 0.95
    assert np.allclose(res.probs[~gate], weak[target][~gate])
    assert res.info["tau_from"] == "weak budget (cross-fitted)"


def test_refinement_refuses_splits_that_carry_ground_truth_outside_the_budget():
    blind = pd.DataFrame({"split": ["weak_train", "transfer"], "label": ["a", None]})
    assert_blind(blind)
    leaked = blind.assign(label=["a", "b"])
    with pytest.raises(ValueError, match="1 ground-truth label"):
        assert_blind(leaked)


# ---- perturbation consistency ----------------------------------------------------------------


def test_perturbation_drops_irrelevant_tokens_only_and_deterministically():
    text = "The senator will vote on the law , again !"
    out = perturb_text(text)
    assert out == "senator vote law"
    assert perturb_text(text) == out
    assert irrelevant("the") and irrelevant("!!") and not irrelevant("senator")
    assert perturb_text("the of and") == "the of and", "never an empty text"
    half = [perturb_text(f"the cat {i} and the dog", drop_frac=0.5) for i in range(40)]
    assert any("the" in h for h in half) and any("the" not in h.split() for h in half)


def test_flip_rate_counts_changed_predictions():
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    b = np.array([[0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    assert flip_rate(a, b) == pytest.approx(2 / 3)


def test_zero_shot_answers_are_the_nearest_label_description_and_read_no_label():
    from w2s.methods.selective import zero_shot_answers

    x, y = clusters(30, 3)
    centres = np.stack([x[y == c].mean(0) for c in range(3)])
    own = zero_shot_answers(x[:45], x[45:], centres, temperature=0.05)
    assert own.source == "zero_shot"
    assert (own.budget.argmax(1) == y[:45]).all() and (own.target.argmax(1) == y[45:]).all()
    np.testing.assert_allclose(own.target.sum(1), 1.0)
    cooler = zero_shot_answers(x[:45], x[45:], centres, temperature=1.0)
    assert (cooler.target.argmax(1) == own.target.argmax(1)).all(), "the temperature sets confidence only"
    assert cooler.target.max(1).mean() < own.target.max(1).mean()


def test_pik_gate_on_zero_shot_answers_self_labels_where_they_are_right():
    """The model's own (zero-shot) answer is right in region A and wrong in region B; P(IK), trained
    on the budget, learns where, so the gate keeps the own answers in A and the weak labels in B."""
    from w2s.methods.selective import OwnAnswers, gate_labels

    rng = np.random.default_rng(0)
    n = 400
    region_a = rng.random(n) < 0.5
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4))
    x[:, 1] += np.where(region_a, 3.0, -3.0)  # the probe can tell the regions apart
    answer = np.where(region_a, y, 1 - y)  # right in A, wrong in B
    confident = np.eye(2)[answer] * 0.8 + 0.1  # equally confident everywhere: confidence cannot tell
    weak = np.eye(2)[y] * 0.6 + 0.2
    weak[rng.random(n) < 0.2] = [0.5, 0.5]
    budget, target = np.arange(0, 200), np.arange(200, n)
    own = OwnAnswers(confident[budget], confident[target], "zero_shot")
    res = gate_labels(x[budget], y[budget], weak[budget], x[target], weak[target], own, "pik", None, 5, 1.0, 0)
    assert res.gate[region_a[target]].mean() > 0.9 and res.gate[~region_a[target]].mean() < 0.1
    assert np.mean(res.probs.argmax(1) == y[target]) > np.mean(weak[target].argmax(1) == y[target])
    assert res.info["self_labels"] == "zero_shot" and res.info["head_oof_acc"] == pytest.approx(
        np.mean(answer[budget] == y[budget])
    )
    plain = gate_labels(x[budget], y[budget], weak[budget], x[target], weak[target], own, "confidence", None, 5, 1.0, 0)
    assert not plain.gate.any(), "a confidence gate cannot separate the regions: it keeps the weak labels"


def test_corrector_on_sparse_features_computes_what_it_does_on_the_same_dense_ones():
    from scipy import sparse

    x, y = clusters(40, 2, spread=0.5)
    x = np.where(np.abs(x) > 3, x, 0.0)  # mostly zeros, like TF-IDF
    weak = np.random.default_rng(1).dirichlet([1, 1], size=len(y))
    cfg = CorrectorConfig(steps=50)
    dense, dense_losses = fit_corrector(x, weak, y, cfg, seed=0)
    sp, sparse_losses = fit_corrector(sparse.csr_matrix(x), weak, y, cfg, seed=0)
    np.testing.assert_allclose(sparse_losses, dense_losses, rtol=1e-9)
    np.testing.assert_allclose(correct(sp, sparse.csr_matrix(x), weak), correct(dense, x, weak), atol=1e-9)


def test_weak_side_features_are_the_weak_models_own_tfidf_features(tmp_path):
    from types import SimpleNamespace

    from w2s.core.config import WeakConfig
    from w2s.core.models.weak import train_tfidf
    from w2s.methods.corrector import weak_side_features

    texts = [f"the {w} senator said {i} things about {w}" for i, w in enumerate(["tax", "war", "jobs"] * 10)]
    budget = pd.DataFrame({"text": texts[:20]})
    targets = pd.DataFrame({"text": texts[20:]})
    weak = WeakConfig(tfidf={"ngram_max": 2, "max_features": 50})
    train_tfidf(budget["text"].tolist(), np.arange(20) % 2, 2, weak, 0, tmp_path)
    import joblib

    vectorizer = joblib.load(tmp_path / "tfidf.joblib")[0]  # the weak model's own featuriser
    x_budget, x_targets = weak_side_features(SimpleNamespace(budget=budget, targets=targets), weak)
    assert (x_budget != vectorizer.transform(budget["text"])).nnz == 0
    assert (x_targets != vectorizer.transform(targets["text"])).nnz == 0

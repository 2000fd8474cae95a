import numpy as np
import pytest

from w2s.core import metrics
from w2s.core.metric_schema import SplitPredictions, split_metric_names, split_metrics


def test_accuracy_and_binary_auroc():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert metrics.accuracy(probs, y) == 0.5
    # positives score 0.8 and 0.4, negatives 0.1 and 0.7: 3 of 4 pairs ordered correctly
    assert metrics.auroc(probs, y) == pytest.approx(0.75)


def test_multiclass_auroc_is_macro_one_vs_rest():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    # class 0: 1.0; class 1: 1.0; class 2: positives 0.8, 0.2 vs negatives 0.1, 0.1 -> 1.0
    assert metrics.auroc(probs, y) == pytest.approx(1.0)
    assert metrics.auroc(probs, np.array([1, 1, 1, 1])) is None


@pytest.mark.parametrize(
    "weak, strong, ceiling, expected",
    [
        (0.8, 0.9, 1.0, 0.5),
        (0.8, 0.7, 1.0, -0.5),
        (0.8, 0.9, 0.8, None),
        (0.8, 0.9, 0.7, None),
    ],
)
def test_pgr(weak, strong, ceiling, expected):
    got = metrics.pgr(weak, strong, ceiling)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_agreement_split_by_weak_correctness():
    y = np.array([0, 0, 1, 1])
    weak = np.array([0, 1, 1, 0])  # right, wrong, right, wrong
    student = np.array([0, 0, 1, 0])  # agrees on both rights, and on one of the wrongs
    out = metrics.agreement(student, weak, y)
    assert out == {"agreement": 0.75, "agreement_weak_correct": 1.0, "agreement_weak_wrong": 0.5}


def test_ece_zero_for_calibrated_confident_predictions():
    y = np.array([0, 1])
    assert metrics.ece(np.array([[1.0, 0.0], [0.0, 1.0]]), y) == 0.0
    assert metrics.ece(np.array([[0.9, 0.1], [0.9, 0.1]]), y) == pytest.approx(0.4)


def test_split_metrics_computes_every_headline_metric_of_the_schema_and_null_pgr():
    y = np.array([0, 1, 0, 1])
    good = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    bad = good[:, ::-1]
    out = split_metrics(SplitPredictions(y, weak=good, w2s=good, ceiling=bad, budget=bad))
    assert tuple(out) == split_metric_names()
    assert out["w2s_acc"] == 1.0 and out["strong_budget_acc"] == 0.0 and out["agreement"] == 1.0
    assert out["pgr"] is None and out["pgr_auroc"] is None  # the ceiling is below the weak model


def test_a_metric_added_to_the_schema_is_computed_averaged_allowed_as_a_floor_and_documented(monkeypatch):
    """Adding a metric is one entry in `METRICS`: nothing else lists it."""
    from w2s.config import load_config
    from w2s.core import metric_schema

    toy = metric_schema.Metric(
        "w2s_brier", "Brier score of the student.", higher_is_better=False, ood=True, floor=True,
        compute=lambda p: metrics.brier(p.w2s, p.y),
    )  # fmt: skip
    monkeypatch.setattr(metric_schema, "METRICS", (*metric_schema.METRICS, toy))
    y = np.array([0, 1])
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    out = split_metrics(SplitPredictions(y, weak=sure, w2s=sure, ceiling=sure, budget=sure))
    assert out["w2s_brier"] == 0.0
    assert {"w2s_brier", "w2s_brier_ood"} <= set(metric_schema.aggregated_names(metric_schema.METRICS))
    assert "w2s_brier" in metric_schema.ood_names(metric_schema.METRICS)
    assert load_config(None, ["promotion.floors={w2s_brier: 0.1}"]).promotion.floors == {"w2s_brier": 0.1}
    assert "| `w2s_brier` | lower | yes |" in metric_schema.reference_table(metric_schema.METRICS)
    assert metric_schema.declared("w2s_brier_ood", metric_schema.METRICS)


def test_misfit_identity_for_realisable_least_squares():
    """Charikar et al.: projecting weak labels onto a realisable linear class gives
    Err_w = Err_sw + Misfit exactly (orthogonal projection)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8))
    target = x @ rng.normal(size=8)  # realisable by the strong class
    weak = target + rng.normal(scale=0.7, size=500) + 0.3 * np.sin(3 * x[:, 0])
    coef, *_ = np.linalg.lstsq(x, weak, rcond=None)  # the strong student fit to weak labels
    student = x @ coef
    err_w = np.mean((weak - target) ** 2)
    err_sw = np.mean((student - target) ** 2)
    fit = metrics.misfit(student[:, None], weak[:, None])["misfit"]
    assert err_w == pytest.approx(err_sw + fit, rel=1e-10)
    assert err_sw < err_w


def test_gain_over_labels_measures_misfit_on_held_out_rows_against_the_training_labels():
    y = np.array([0, 1, 1])
    supervisor = np.array([[0.6, 0.4], [0.4, 0.6], [0.7, 0.3]])  # right, right, wrong on test
    student = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8]])  # right on all three
    labels = np.array([[0.6, 0.4], [0.4, 0.6]])  # the training labels on two val rows
    fit = np.array([[0.9, 0.1], [0.1, 0.9]])  # the student there
    out = metrics.gain_over_labels(y, supervisor, student, labels, fit)
    assert out["supervisor_acc"] == pytest.approx(2 / 3) and out["gain_over_labels"] == pytest.approx(1 / 3)
    assert out["misfit"] == pytest.approx(2 * 0.3**2)
    expected_kl = 0.6 * np.log(0.6 / 0.9) + 0.4 * np.log(0.4 / 0.1)
    assert out["misfit_kl"] == pytest.approx(expected_kl)
    # Brier on test: supervisor (0.32 + 0.32 + 2 * 0.7^2) / 3 = 0.54, student (0.02 + 0.02 + 0.08) / 3 = 0.04
    assert out["actual_gain"] == pytest.approx(0.50)
    assert out["gain_minus_misfit"] == pytest.approx(0.50 - 0.18)


def test_curve_diagnostics_read_the_peak_the_end_and_the_weak_val_pick():
    curve = [
        {"step": 10, "epoch": 0.5, "val_gt_acc": 0.80, "val_weak_acc": 0.70},
        {"step": 20, "epoch": 1.0, "val_gt_acc": 0.86, "val_weak_acc": 0.80},
        {"step": 30, "epoch": 1.5, "val_gt_acc": 0.84, "val_weak_acc": 0.90},
        {"step": 40, "epoch": 2.0, "val_gt_acc": 0.82, "val_weak_acc": 0.90},  # a tie: the first peak is kept
    ]
    out = metrics.curve_diagnostics(curve)
    assert out == pytest.approx(
        {
            "val_acc_last": 0.82,
            "val_acc_peak": 0.86,
            "val_acc_decline": 0.04,
            "peak_epoch": 1.0,
            "val_acc_weak_pick": 0.84,
        }
    )
    blind = [{k: v for k, v in p.items() if k != "val_gt_acc"} for p in curve]
    assert metrics.curve_diagnostics(blind) == {}, "no ground truth on val: nothing to say"
    no_weak = [{k: v for k, v in p.items() if k != "val_weak_acc"} for p in curve]
    assert "val_acc_weak_pick" not in metrics.curve_diagnostics(no_weak)


def test_every_declared_metric_is_listed_once_even_when_a_method_inherits_another_s():
    from w2s.methods import all_methods, all_metrics

    names = [m.name for m in all_metrics()]
    assert len(names) == len(set(names))
    inherited = [
        n for n, cls in all_methods().items() for base in cls.__mro__[1:] if getattr(base, "declared_metrics", None)
    ]
    assert inherited, "some method inherits another's declared metrics (confidence from selective)"
    assert {"self_label_frac", "self_label_budget_acc"} <= set(names)

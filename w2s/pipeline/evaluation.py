"""The evaluation step: every metric of the schema on test (and ood_test), the baselines, and how
the student relates to the labels it trained on; and the per-row test correctness the sweep
report's bootstrap resamples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from w2s.core.data.split import (
    encode_labels,
)
from w2s.core.metric_schema import SplitPredictions, ood_names, split_metrics
from w2s.core.refs import (
    LabelsRef,
    ModelRef,
    SplitsRef,
    split_part,
)
from w2s.errors import DataError
from w2s.pipeline.labels import (
    read_weak_labels,
)
from w2s.pipeline.predictions import split_probs


def supervisor_of(weak: ModelRef, refined: ModelRef | None, chain: tuple[tuple[ModelRef, LabelsRef], ...]) -> ModelRef:
    """The model whose labels the student trained on: the last intermediate student of a chain,
    else a refined supervisor, else the weak model."""
    if chain:
        return chain[-1][0]
    return refined if refined is not None else weak


def evaluate(
    splits_ref: SplitsRef,
    weak: ModelRef,
    student: ModelRef,
    ceiling: ModelRef,
    budget: ModelRef,
    labels: LabelsRef,
    refined: ModelRef | None = None,
    chain: tuple[tuple[ModelRef, LabelsRef], ...] = (),
) -> dict[str, float | None]:
    """Headline metrics on the test split (and `_ood` ones on ood_test), every prediction table
    aligned by id first, with the strong model trained on the weak budget's ground truth as a
    baseline (`strong_budget_*`), and how the student relates to the labels it trained on
    (`labels`, published by `supervisor_of(...)`): its gain over them on test and its misfit to
    them on val. With a refined supervisor, also how good its labels are (`refined_*`)."""
    from w2s.core.metrics import accuracy, auroc, clean, curve_diagnostics, gain_over_labels

    splits = pd.read_parquet(splits_ref.path)
    names = splits_ref.label_names
    test, transfer = split_part(splits, "test"), split_part(splits, "transfer")
    y = encode_labels(test["label"], names)
    wanted = {"test": test["id"], "transfer": transfer["id"]}
    ood = splits[splits["split"] == "ood_test"]
    evals = {"test": test["id"], **({"ood_test": ood["id"]} if len(ood) else {})}
    fit = read_weak_labels(Path(labels.path))
    fit = fit[fit["split"] == "val"].reset_index(drop=True)
    val = split_part(splits, "val")
    w = split_probs(weak, {**wanted, **evals})
    s = split_probs(student, {**wanted, **evals, "val": val["id"]})
    c, b = split_probs(ceiling, evals), split_probs(budget, {**evals, "val": val["id"]})
    out = split_metrics(SplitPredictions(y, w["test"], s["test"], c["test"], b["test"]))
    out["n_test"] = float(len(test))
    # For tuning rules only (read after training; no run chooses anything by them).
    y_val = encode_labels(val["label"], names)
    out["w2s_val_acc"], out["strong_budget_val_acc"] = accuracy(s["val"], y_val), accuracy(b["val"], y_val)
    supervisor = supervisor_of(weak, refined, chain)
    sup = w if supervisor is weak else split_probs(supervisor, evals)
    if list(fit["id"]) != list(val["id"]):
        raise DataError("the student's label file does not hold the val split's rows in its order")
    out.update(gain_over_labels(y, sup["test"], s["test"], np.stack(fit["weak_probs"].to_numpy()), s["val"]))
    if len(ood):
        y_ood = encode_labels(ood["label"], names)
        preds = SplitPredictions(y_ood, w["ood_test"], s["ood_test"], c["ood_test"], b["ood_test"])
        ood_metrics = split_metrics(preds)
        out.update({f"{k}_ood": ood_metrics[k] for k in ood_names() if k in ood_metrics})
        out["n_test_ood"] = float(len(ood))
    # Diagnostics only (never fed back): how accurate the labels the student learned from were.
    y_transfer = encode_labels(transfer["label"], names)
    out["weak_transfer_acc"] = accuracy(w["transfer"], y_transfer)
    if refined is not None:
        r = split_probs(refined, {**wanted, **evals})
        out["refined_acc"], out["refined_auroc"] = accuracy(r["test"], y), auroc(r["test"], y)
        out["labels_transfer_acc"] = accuracy(r["transfer"], y_transfer)
        if len(ood):
            out["refined_acc_ood"] = accuracy(r["ood_test"], encode_labels(ood["label"], names))
        if isinstance(refined.info.get("changed_frac_transfer"), float):
            out["changed_frac_transfer"] = refined.info["changed_frac_transfer"]
    elif supervisor is not weak:  # a bootstrap chain's last intermediate
        t = split_probs(supervisor, {"transfer": transfer["id"]})["transfer"]
        out["labels_transfer_acc"] = accuracy(t, y_transfer)
    else:
        out["labels_transfer_acc"] = out["weak_transfer_acc"]
    if "flip_rate" in student.info:
        out["flip_rate"] = student.info["flip_rate"]
    if isinstance(student.info.get("steps"), int):
        out["student_steps"] = float(student.info["steps"])
    out.update(curve_diagnostics(student.info.get("curve") or []))
    return clean(out)


def correctness_on_test(splits_ref: SplitsRef, models: dict[str, ModelRef]) -> pd.DataFrame:
    """Per test row (by id), whether each named model's argmax is the label (0/1): the paired
    data a bootstrap over test rows resamples."""
    splits = pd.read_parquet(splits_ref.path)
    test = split_part(splits, "test")
    y = encode_labels(test["label"], splits_ref.label_names)
    out = pd.DataFrame({"id": test["id"].to_numpy()})
    for name, ref in models.items():
        out[name] = (split_probs(ref, {"test": test["id"]})["test"].argmax(1) == y).astype("int8")
    return out

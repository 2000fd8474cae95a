"""The pipeline's step functions over paths; `w2s.pipeline.sequence` runs them in order for the
Prefect flow, the library runner and the DVC stages alike.

Each step takes references (paths, hashes, small dataclasses) and returns one; the expensive
steps go through the content-addressed cache and say whether they reused an entry.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache, cache_key
from w2s.core.data.ingest import ingest_table, read_rows
from w2s.core.data.sources import COLUMNS, table_md5
from w2s.core.data.split import (
    SPLITS,
    assign_splits,
    encode_labels,
    stratified_take,
)
from w2s.core.metric_schema import SplitPredictions, ood_names, split_metrics
from w2s.core.refs import (
    PREDICT_SPLITS,
    WEAK_VERSION,
    LabelsRef,
    ModelRef,
    SplitsRef,
    TableRef,
    split_part,
)
from w2s.errors import DataError
from w2s.io import atomic_path, read_json, write_json
from w2s.ops.validation import (
    GateReport,
    validate_raw_file,
    validate_splits,
)
from w2s.pipeline.labels import (
    read_predictions,
    read_weak_labels,
    write_predictions,
)
from w2s.project import Project


def ingest(cfg: Config, project: Project, out_dir: Path) -> TableRef:
    """Resolve the data source to the canonical table and write it as Parquet, streamed: a large
    file is never held in memory whole."""
    done = ingest_table(cfg.data, project, out_dir / "table.parquet")
    names = list(cfg.data.labels) if cfg.data.labels else done.labels
    return TableRef(str(out_dir / "table.parquet"), done.md5, names, done.rows, asdict(done.source), done.stats)


def validate_table(ref: TableRef, cfg: Config) -> GateReport:
    """The raw-data gate; raises `ValidationFailed` listing every failed expectation."""
    report = validate_raw_file(ref.path, cfg.data.labels)
    report.raise_if_failed()
    return report


SPLIT_BY = ["label", "group", "pair"]  # what assign_splits reads: the texts wait until the rows are chosen
POSITION = "_position"


def make_splits(ref: TableRef, cfg: Config, out_dir: Path) -> tuple[SplitsRef, GateReport]:
    """Deterministic splits for `cfg.seed`, gated on test/train text overlap.

    The splits are drawn over the table's labels, groups and pair keys alone; only the chosen
    rows' ids and texts are then read, so a table far larger than the splits is never loaded.
    """
    frame = pd.read_parquet(ref.path, columns=SPLIT_BY).assign(**{POSITION: lambda f: np.arange(len(f))})
    try:
        chosen = assign_splits(frame, cfg.split, cfg.seed)
    except DataError as exc:
        dropped = ref.stats.get("duplicate_texts_dropped", 0)
        if not dropped:
            raise
        # a file that looked big enough may have shrunk at ingest: say why
        raise DataError(f"{exc}, after dropping {dropped} duplicate texts (data.dedupe)") from None
    rows = read_rows(ref.path, chosen[POSITION].to_numpy(), ["id", "text"])
    splits = pd.concat([rows, chosen.drop(columns=POSITION).reset_index(drop=True)], axis=1)
    splits = splits[[*COLUMNS, "split"]]
    report = validate_splits(splits, ref.label_names)
    report.raise_if_failed()
    path = out_dir / "splits.parquet"
    with atomic_path(path) as tmp:
        splits.to_parquet(tmp, index=False)
    counts = {s: int((splits["split"] == s).sum()) for s in SPLITS}
    md5 = table_md5(splits, ["id", "text", "label", "split"])
    return SplitsRef(str(path), md5, ref.label_names, counts), report


def _rows_hash(df: pd.DataFrame, with_labels: bool) -> str:
    return table_md5(df, ["id", "text", "label"] if with_labels else ["id", "text"])


def budget_subset(train_df: pd.DataFrame, frac: float, seed: int) -> pd.DataFrame:
    """A deterministic, class-stratified fraction of the weak budget (at least one per class)."""
    n = max(int(round(frac * len(train_df))), train_df["label"].nunique())
    idx = stratified_take(train_df["label"].to_numpy(), min(n, len(train_df)), np.random.default_rng(seed))
    return train_df.iloc[idx]


def train_weak(
    splits_ref: SplitsRef, cfg: Config, cache: ArtifactCache, subset: tuple[float, int] | None = None
) -> ModelRef:
    """Train the weak supervisor on weak_train ground truth (or a `(fraction, seed)` subset of
    it); predict transfer, val, test and ood_test."""
    from w2s.core.models.weak import WEAK_TRAINERS

    splits = pd.read_parquet(splits_ref.path)
    train_df = split_part(splits, "weak_train")
    if subset is not None and subset[0] < 1:
        train_df = budget_subset(train_df, *subset)
    targets = splits[splits["split"].isin(PREDICT_SPLITS)]
    spec = {
        "version": WEAK_VERSION,
        "weak": cfg.weak.model_dump(mode="json"),
        "seed": cfg.seed,
        "labels": splits_ref.label_names,
        "train": _rows_hash(train_df, True),
        "predict": _rows_hash(targets, False),
    }
    key = cache_key("weak", spec)
    hit = cache.lookup("weak", key)
    if hit is not None:
        return ModelRef("weak", str(hit), key, True, read_json(hit / "info.json"))
    names = splits_ref.label_names
    y = encode_labels(train_df["label"], names)
    start = time.perf_counter()
    with cache.build("weak", key, spec) as folder:
        predict = WEAK_TRAINERS[cfg.weak.kind](train_df["text"].tolist(), y, len(names), cfg.weak, cfg.seed, folder)
        probs = predict(targets["text"].tolist())
        write_predictions(folder / "preds.parquet", targets["id"], targets["split"], probs)
        info = {
            "kind": cfg.weak.kind,
            "train_examples": len(train_df),
            "seconds": round(time.perf_counter() - start, 2),
        }
        write_json(folder / "info.json", info)
    return ModelRef("weak", str(cache.path("weak", key)), key, False, info)


def predictions(ref: ModelRef, split: str) -> pd.DataFrame:
    """The `id, split, probs` predictions a model entry holds for one split."""
    preds = read_predictions(Path(ref.dir) / "preds.parquet")
    return preds[preds["split"] == split].reset_index(drop=True)


def split_probs(ref: ModelRef, wanted: dict[str, pd.Series]) -> dict[str, np.ndarray]:
    """Probabilities of several splits, aligned to their ids, from one read of the entry."""
    preds = read_predictions(Path(ref.dir) / "preds.parquet")
    return {
        name: aligned_probs(preds[preds["split"] == name].reset_index(drop=True), ids, f"{ref.kind} {name} predictions")
        for name, ids in wanted.items()
    }


def aligned_probs(preds: pd.DataFrame, ids: pd.Series, what: str) -> np.ndarray:
    """Probabilities in the order of `ids`; a mismatch of ids is an error, never assumed away."""
    if list(preds["id"]) != list(ids):
        raise DataError(f"{what}: prediction ids do not match the split's ids")
    return np.stack(preds["probs"].to_numpy())


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
    w = split_probs(weak, {**wanted, **evals})
    s = split_probs(student, {**wanted, **evals, "val": fit["id"]})
    c, b = split_probs(ceiling, evals), split_probs(budget, evals)
    out = split_metrics(SplitPredictions(y, w["test"], s["test"], c["test"], b["test"]))
    out["n_test"] = float(len(test))
    supervisor = supervisor_of(weak, refined, chain)
    sup = w if supervisor is weak else split_probs(supervisor, evals)
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

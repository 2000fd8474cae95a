"""Strong-model training: the weak-to-strong student and the ground-truth ceiling.

The student trains on the transfer split's soft weak labels and, by default, keeps the
checkpoint that best agrees with the *weak* labels on val (no ground truth is used to pick it).
The ceiling is the same model trained on transfer ground truth, selected on ground-truth val.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.cache import ArtifactCache, cache_key
from w2s.config import Config, StrongConfig
from w2s.data.sources import table_md5
from w2s.data.split import encode_labels
from w2s.errors import DataError
from w2s.io import read_json, write_json
from w2s.labels import read_weak_labels, write_predictions
from w2s.refs import STRONG_VERSION, ModelRef, SplitsRef, split_part

# Fields that change what the ceiling learns; the student's loss and stopping rule do not.
CEILING_FIELDS = ("model", "num_layers", "max_length", "epochs", "batch_size", "lr",
                  "weight_decay", "warmup_frac", "evals_per_epoch", "mode", "frozen")


def _targets(role: str, transfer: pd.DataFrame, val: pd.DataFrame, labels_path: str | None,
             names: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Training targets for transfer and weak labels for val (student) or one-hot truth (ceiling)."""
    k = len(names)
    if role == "ceiling":
        return np.eye(k, dtype=np.float32)[encode_labels(transfer["label"], names)], None
    if labels_path is None:
        raise ValueError("the student needs a weak-label file")
    labels = read_weak_labels(Path(labels_path))
    out = []
    for split, rows in (("transfer", transfer), ("val", val)):
        part = labels[labels["split"] == split]
        if list(part["id"]) != list(rows["id"]):
            raise DataError(f"weak-label ids do not match the {split} split's ids")
        out.append(np.stack(part["weak_probs"].to_numpy()).astype(np.float32))
    return out[0], out[1].argmax(1)


def train_strong(splits_ref: SplitsRef, cfg: Config, cache: ArtifactCache, role: str,
                 labels_path: str | None = None, labels_md5: str | None = None) -> ModelRef:
    """Train (or reuse) the student (`role="w2s"`) or the ceiling (`role="ceiling"`)."""
    scfg = cfg.strong
    splits = pd.read_parquet(splits_ref.path)
    transfer, val, test = (split_part(splits, s) for s in ("transfer", "val", "test"))
    strong_spec = scfg.model_dump(mode="json")
    if role == "ceiling":
        strong_spec = {k: strong_spec[k] for k in CEILING_FIELDS}
    spec: dict[str, Any] = {
        "version": STRONG_VERSION, "role": role, "strong": strong_spec, "seed": cfg.seed,
        "labels": splits_ref.label_names,
        "rows": table_md5(splits[splits["split"].isin(["transfer", "val", "test"])],
                          ["id", "text", "split"]),
        "targets": labels_md5 if role == "w2s" else table_md5(transfer, ["id", "label"]),
        "val_truth": table_md5(val, ["id", "label"]),
    }
    key = cache_key("strong", spec)
    hit = cache.lookup("strong", key)
    if hit is not None:
        return ModelRef(role, str(hit), key, True, read_json(hit / "info.json"))

    with cache.build("strong", key, spec) as folder:
        info = _fit(splits_ref.label_names, transfer, val, test, cfg, role, labels_path, folder, cache)
    return ModelRef(role, str(cache.path("strong", key)), key, False, info)


def _inputs(model, tokenizer, transfer: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
            scfg: StrongConfig, cache: ArtifactCache):
    """What trains and what it reads: the whole classifier on token ids (finetune), or only its
    head on cached embeddings (frozen); returns (trainee, train, val, test, train settings)."""
    from w2s.models.batching import encode

    if scfg.mode == "finetune":
        data = [encode(tokenizer, df["text"].tolist(), scfg.max_length) for df in (transfer, val, test)]
        return (model, *data, scfg)
    from w2s.frozen import Embedded, HeadOnly, embeddings

    vectors = embeddings(model, tokenizer, pd.concat([transfer, val, test]), scfg.model, scfg.num_layers,
                         scfg.max_length, scfg.eval_batch_size, cache)
    cuts = np.cumsum([len(transfer), len(val)])
    data = [Embedded(part) for part in (vectors[: cuts[0]], vectors[cuts[0]: cuts[1]], vectors[cuts[1]:])]
    settings = scfg.model_copy(update=scfg.frozen.model_dump())
    return (HeadOnly(model), *data, settings)


def _fit(names: list[str], transfer: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
         cfg: Config, role: str, labels_path: str | None, folder: Path, cache: ArtifactCache) -> dict[str, Any]:
    from w2s.losses import make_loss, xent
    from w2s.models.batching import predict_logits, softmax
    from w2s.models.classifier import build_classifier, save_classifier
    from w2s.train import train

    scfg = cfg.strong
    start = time.perf_counter()
    targets, val_weak = _targets(role, transfer, val, labels_path, names)
    # Blind splits (weak-model selection) carry no val ground truth: then only weak agreement.
    val_truth = encode_labels(val["label"], names) if val["label"].notna().all() else None
    tokenizer, model = build_classifier(scfg.model, len(names), scfg.num_layers, cfg.seed)
    trainee, enc_train, enc_val, enc_test, settings = _inputs(model, tokenizer, transfer, val, test, scfg, cache)

    def evaluate(m) -> dict[str, float]:
        pred = predict_logits(m, enc_val, scfg.eval_batch_size).argmax(1)
        point = {}
        if val_truth is not None:
            point["val_gt_acc"] = float(np.mean(pred == val_truth))
        if val_weak is not None:
            point["val_weak_acc"] = float(np.mean(pred == val_weak))
        return point

    if role == "ceiling":
        select, loss = "val_gt_acc", xent
    else:
        select = {"weak_val": "val_weak_acc", "oracle": "val_gt_acc", "none": None}[scfg.early_stopping]
        params = {"logconf": scfg.logconf, "product": scfg.product}.get(scfg.loss)
        loss = make_loss(scfg.loss, **(params.model_dump() if params else {}))
    result = train(trainee, enc_train, targets, settings, cfg.seed, loss, evaluate, select,
                   desc=f"{role} student" if role == "w2s" else "ceiling")

    # The student also predicts its own training split: its misfit to the weak labels there is
    # what the Charikar et al. bound relates to the gain.
    parts = [(transfer, enc_train)] if role == "w2s" else []
    parts += [(val, enc_val), (test, enc_test)]
    rows = pd.concat([df for df, _ in parts])
    logits = np.concatenate([
        predict_logits(trainee, enc, scfg.eval_batch_size, desc=f"predict {df['split'].iloc[0]}")
        for df, enc in parts
    ])
    write_predictions(folder / "preds.parquet", rows["id"], rows["split"], softmax(logits))
    save_classifier(model, tokenizer, folder / "model", {
        "num_labels": len(names), "label_names": names, "max_length": scfg.max_length,
    })
    info = {
        "role": role, "selection": select, "early_stopping": scfg.early_stopping if role == "w2s" else "gt_val",
        "steps": result.steps, "best_step": result.best_step, "best_score": result.best_score,
        "train_seconds": round(result.seconds, 2), "examples_per_s": round(result.examples_per_s, 2),
        "mode": scfg.mode, "truncated_texts": getattr(enc_train, "truncated", 0),
        "seconds": round(time.perf_counter() - start, 2),
        "curve": result.curve,
    }
    write_json(folder / "info.json", info)
    return info

"""Strong-model training: the weak-to-strong student and the ground-truth ceiling.

The student trains on the transfer split's soft weak labels and, by default, keeps the
checkpoint that best agrees with the *weak* labels on val (no ground truth is used to pick it).
The ceiling is the same model trained on transfer ground truth, selected on ground-truth val.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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
from w2s.refs import PREDICT_SPLITS, STRONG_VERSION, ModelRef, SplitsRef, split_part

# Fields that change what the ceiling learns; the student's loss and stopping rule do not.
CEILING_FIELDS = ("model", "num_layers", "max_length", "epochs", "batch_size", "lr",
                  "weight_decay", "warmup_frac", "evals_per_epoch", "mode", "frozen", "backend",
                  "deepspeed", "distributed", "dropout")


def _targets(role: str, transfer: pd.DataFrame, val: pd.DataFrame, labels_path: str | None,
             names: list[str], members: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Training targets for transfer and the weak labels of val: soft labels (N x K), each
    ensemble member's labels (N x M x K) when `members`, or one-hot truth for the ceiling."""
    k = len(names)
    if role == "ceiling":
        return np.eye(k, dtype=np.float32)[encode_labels(transfer["label"], names)], None
    if labels_path is None:
        raise ValueError("the student needs a weak-label file")
    labels = read_weak_labels(Path(labels_path))
    column = "member_probs" if members else "weak_probs"
    if column not in labels.columns:
        raise DataError(f"{labels_path}: weak-label file has no '{column}' column")
    out = []
    for split, rows in (("transfer", transfer), ("val", val)):
        part = labels[labels["split"] == split]
        if list(part["id"]) != list(rows["id"]):
            raise DataError(f"weak-label ids do not match the {split} split's ids")
        out.append(np.stack([np.asarray(np.stack(v) if members else v, dtype=np.float32)
                             for v in part[column].to_numpy()]))
    return out[0], out[1]


def _objective(cfg: Config) -> dict[str, Any]:
    """Method settings that change how the student trains (not only what its labels are)."""
    dumped = cfg.model_dump(mode="json")
    return {"method": cfg.method, cfg.method: dumped[cfg.method]} if cfg.method in ("ensemble", "perturb") else {}


def train_strong(splits_ref: SplitsRef, cfg: Config, cache: ArtifactCache, role: str,
                 labels_path: str | None = None, labels_md5: str | None = None) -> ModelRef:
    """Train (or reuse) the student (`role="w2s"`) or the ceiling (`role="ceiling"`)."""
    scfg = cfg.strong
    splits = pd.read_parquet(splits_ref.path)
    strong_spec = scfg.model_dump(mode="json")
    if role == "ceiling":
        strong_spec = {k: strong_spec[k] for k in CEILING_FIELDS}
    spec: dict[str, Any] = {
        "version": STRONG_VERSION, "role": role, "strong": strong_spec, "seed": cfg.seed,
        "labels": splits_ref.label_names, "objective": _objective(cfg) if role == "w2s" else {},
        "rows": table_md5(splits[splits["split"].isin(PREDICT_SPLITS)], ["id", "text", "split"]),
        "targets": labels_md5 if role == "w2s" else table_md5(split_part(splits, "transfer"), ["id", "label"]),
        "val_truth": table_md5(split_part(splits, "val"), ["id", "label"]),
    }
    key = cache_key("strong", spec)
    hit = cache.lookup("strong", key)
    if hit is not None:
        return ModelRef(role, str(hit), key, True, read_json(hit / "info.json"))

    with cache.build("strong", key, spec) as folder:
        info = _fit(splits_ref.label_names, splits, cfg, role, labels_path, folder, cache, splits_ref.path)
    return ModelRef(role, str(cache.path("strong", key)), key, False, info)


def _inputs(model, tokenizer, splits: pd.DataFrame, parts: list[pd.DataFrame], scfg: StrongConfig,
            cache: ArtifactCache):
    """What trains and what it reads: the whole classifier on token ids (finetune), or only its
    head on cached embeddings (frozen); returns (trainee, one dataset per part, train settings)."""
    from w2s.models.batching import encode

    if scfg.mode == "finetune":
        return model, [encode(tokenizer, df["text"].tolist(), scfg.max_length) for df in parts], scfg
    import torch

    from w2s.frozen import Embedded, HeadOnly
    from w2s.refine.embed import split_embeddings, take

    table = split_embeddings(splits, scfg, cache)
    data = [Embedded(torch.from_numpy(take(table, df["id"]).astype(np.float32))) for df in parts]
    return HeadOnly(model), data, scfg.model_copy(update=scfg.frozen.model_dump())


def _loss(cfg: Config, role: str, transfer_targets: np.ndarray):
    """The training loss: plain CE for the ceiling, else the configured student loss (the
    ensemble's learned-weight loss when the labels carry every member's probabilities)."""
    from w2s.losses import make_loss, xent

    scfg = cfg.strong
    if role == "ceiling":
        return xent
    if cfg.method == "ensemble":
        from w2s.refine.ensemble import EnsembleLoss, initial_weights

        e = cfg.ensemble
        return EnsembleLoss(initial_weights(transfer_targets, e.init), e.lr, e.freeze_frac, e.easy_frac)
    params = {"logconf": scfg.logconf, "product": scfg.product}.get(scfg.loss)
    return make_loss(scfg.loss, **(params.model_dump() if params else {}))


def _perturbation(cfg: Config, tokenizer, texts: list[str], targets: np.ndarray):
    """MLX consistency term `weight * CE(f(x~), target)` over the perturbed copies of `texts`."""
    import torch

    from w2s.losses import soft_ce
    from w2s.models.batching import encode, model_device
    from w2s.refine.perturb import perturb_text

    p = cfg.perturb
    enc = encode(tokenizer, [perturb_text(t, p.drop_frac) for t in texts], cfg.strong.max_length)
    target_t = torch.as_tensor(targets, dtype=torch.float32)

    def aux(model, idx, step_frac: float):
        del step_frac
        device = model_device(model)
        logits = model(*(t.to(device) for t in enc.batch(idx)))
        return p.weight * soft_ce(logits, target_t[idx].to(device))

    return aux


@dataclass
class Setup:
    """Everything one training run needs, built the same way in-process and in every rank."""

    model: Any
    tokenizer: Any
    trainee: Any
    parts: list[pd.DataFrame]  # transfer, val, test[, ood_test]
    encs: list[Any]  # one dataset per part
    settings: Any
    targets: np.ndarray
    loss: Any
    evaluate: Any
    select: str | None
    aux: Any
    ensemble: bool


def training_setup(names: list[str], splits: pd.DataFrame, cfg: Config, role: str, labels_path: str | None,
                   cache: ArtifactCache) -> Setup:
    """Model, data, targets, loss, evaluator and selection rule of a student or ceiling run."""
    import torch

    from w2s.models.batching import predict_logits
    from w2s.models.classifier import build_classifier, set_dropout

    scfg = cfg.strong
    transfer, val = split_part(splits, "transfer"), split_part(splits, "val")
    evals = [split_part(splits, s) for s in ("test", "ood_test") if (splits["split"] == s).any()]
    ensemble = role == "w2s" and cfg.method == "ensemble"
    targets, val_targets = _targets(role, transfer, val, labels_path, names, ensemble)
    # Blind splits (weak-model selection) carry no val ground truth: then only weak agreement.
    val_truth = encode_labels(val["label"], names) if val["label"].notna().all() else None
    tokenizer, model = build_classifier(scfg.model, len(names), scfg.num_layers, cfg.seed)
    if scfg.dropout is not None:
        set_dropout(model, scfg.dropout)
    parts = [transfer, val, *evals]
    trainee, encs, settings = _inputs(model, tokenizer, splits, parts, scfg, cache)
    loss = _loss(cfg, role, targets)
    enc_val = encs[1]

    def evaluate(m) -> dict[str, float]:
        pred = predict_logits(m, enc_val, scfg.eval_batch_size).argmax(1)
        point = {}
        if val_truth is not None:
            point["val_gt_acc"] = float(np.mean(pred == val_truth))
        if val_targets is not None:  # the ensemble's val labels follow its current weights
            soft = loss.target(torch.as_tensor(val_targets)).numpy() if ensemble else val_targets
            point["val_weak_acc"] = float(np.mean(pred == soft.argmax(1)))
        return point

    select = "val_gt_acc" if role == "ceiling" else {
        "weak_val": "val_weak_acc", "oracle": "val_gt_acc", "none": None}[scfg.early_stopping]
    aux = None
    if role == "w2s" and cfg.method == "perturb":
        aux = _perturbation(cfg, tokenizer, transfer["text"].tolist(), targets)
    return Setup(model, tokenizer, trainee, parts, encs, settings, targets, loss, evaluate, select, aux, ensemble)


def resolved_backend(scfg: StrongConfig) -> str:
    """torch or deepspeed; `auto` picks DeepSpeed when a CUDA device is present."""
    if scfg.backend != "auto":
        return scfg.backend
    import torch

    return "deepspeed" if torch.cuda.is_available() and scfg.mode == "finetune" else "torch"


def _fit(names: list[str], splits: pd.DataFrame, cfg: Config, role: str, labels_path: str | None,
         folder: Path, cache: ArtifactCache, splits_path: str) -> dict[str, Any]:
    import torch

    from w2s.models.batching import encode, predict_logits, softmax
    from w2s.models.classifier import save_classifier
    from w2s.refine.perturb import flip_rate, perturb_text
    from w2s.train import train

    scfg = cfg.strong
    start = time.perf_counter()
    backend = resolved_backend(scfg)
    desc = f"{role} student" if role == "w2s" else "ceiling"
    extras: dict[str, Any] = {}
    s = training_setup(names, splits, cfg, role, labels_path, cache)
    if backend == "deepspeed":
        from w2s.distributed.launch import train_distributed

        result, extras = train_distributed(s.model, cfg, role, names, splits_path, labels_path, cache)
        if torch.cuda.is_available():  # predict where the ranks trained
            s.model.to("cuda")
    else:
        result = train(s.trainee, s.encs[0], s.targets, s.settings, cfg.seed, s.loss, s.evaluate, s.select,
                       desc=desc, aux=s.aux)
        if s.ensemble:
            extras = {"ensemble_weights": s.loss.weights.tolist(), "weight_history": s.loss.history}
    model, tokenizer, trainee, select = s.model, s.tokenizer, s.trainee, s.select
    transfer, val, *evals = s.parts
    enc_train, enc_val, *enc_evals = s.encs

    # The student also predicts its own training split: its misfit to the weak labels there is
    # what the Charikar et al. bound relates to the gain.
    parts = [(transfer, enc_train)] if role == "w2s" else []
    parts += [(val, enc_val), *zip(evals, enc_evals, strict=True)]
    rows = pd.concat([df for df, _ in parts])
    probs = softmax(np.concatenate([
        predict_logits(trainee, enc, scfg.eval_batch_size, desc=f"predict {df['split'].iloc[0]}")
        for df, enc in parts
    ]))
    write_predictions(folder / "preds.parquet", rows["id"], rows["split"], probs)
    shards = extras.pop("shards", None)
    if shards is not None:  # which transfer rows each rank trained on (the sharding record)
        write_json(folder / "shards.json", shards)
    save_classifier(model, tokenizer, folder / "model", {
        "num_labels": len(names), "label_names": names, "max_length": scfg.max_length,
    })
    info = {
        "role": role, "selection": select, "early_stopping": scfg.early_stopping if role == "w2s" else "gt_val",
        "steps": result.steps, "best_step": result.best_step, "best_score": result.best_score,
        "train_seconds": round(result.seconds, 2), "examples_per_s": round(result.examples_per_s, 2),
        "mode": scfg.mode, "truncated_texts": getattr(enc_train, "truncated", 0),
        "curve": result.curve, "backend": backend, **extras,
    }
    if role == "w2s" and scfg.mode == "finetune":
        # Flip rate under the lexicon perturbation: a robustness diagnostic for every student.
        test = evals[0]
        enc_pert = encode(tokenizer, [perturb_text(t, cfg.perturb.drop_frac) for t in test["text"]], scfg.max_length)
        pert = softmax(predict_logits(model, enc_pert, scfg.eval_batch_size, desc="predict perturbed test"))
        info["flip_rate"] = flip_rate(probs[rows["split"].to_numpy() == "test"], pert)
    info["seconds"] = round(time.perf_counter() - start, 2)
    write_json(folder / "info.json", info)
    return info

"""Strong-model training: the weak-to-strong student and the ground-truth ceiling.

Both are `TrainingRun`s that supply what differs between them: their training targets, loss,
checkpoint-selection metric, what enters their cache key and which splits they predict. The
student trains on the transfer split's labels (the weak ones, or a method's) and by default
keeps the checkpoint that best agrees with the *weak* labels on val (no ground truth picks it).
The ceiling is the same model trained on transfer ground truth, selected on ground-truth val. The
budget baseline is the same model trained on the weak model's own ground truth (weak_train).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache, cache_key
from w2s.core.config import StrongConfig, budget_strong, weights_only
from w2s.core.data.sources import table_md5
from w2s.core.data.split import encode_labels, hash_folds
from w2s.core.refs import (
    PREDICT_SPLITS,
    STRONG_VERSION,
    LabelsRef,
    ModelRef,
    SplitsRef,
    split_part,
)
from w2s.errors import DataError
from w2s.io import read_json, write_json
from w2s.methods import get as get_method
from w2s.methods.base import Aux, Method
from w2s.pipeline.labels import read_weak_labels, write_predictions

if TYPE_CHECKING:
    from w2s.core.losses import Loss

# Fields that change what the ceiling learns; the student's loss and stopping rule do not.
CEILING_FIELDS = (
    "model",
    "num_layers",
    "pooling",
    "lora",
    "precision",
    "gradient_checkpointing",
    "max_length",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_frac",
    "evals_per_epoch",
    "mode",
    "frozen",
    "backend",
    "deepspeed",
    "distributed",
    "dropout",
)
# The flip-rate diagnostic of every fine-tuned student drops every irrelevant token.
FLIP_DROP_FRAC = 1.0
SELECTION_METRICS = {"weak_val": "val_weak_acc", "oracle": "val_gt_acc", "none": None}


class TrainingRun:
    """One strong-model training run: what it learns from and how its checkpoint is chosen."""

    kind: ClassVar[str]  # the cache entry kind and the name in logs ("w2s", "ceiling", "budget")
    stage: ClassVar[str]  # the MLflow stage run's name
    train_split: ClassVar[str] = "transfer"  # the split it trains on
    predicts_transfer: ClassVar[bool] = False  # also predict the training split (misfit)

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    @property
    def strong_spec(self) -> dict[str, Any]:
        return self.cfg.strong.model_dump(mode="json")

    def targets(self, train: pd.DataFrame, val: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Training targets on its training split, and the labels val is scored against (None: none)."""
        raise NotImplementedError

    def targets_md5(self, splits: pd.DataFrame) -> str:
        raise NotImplementedError

    def split_training(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The training split's rows it trains on, and those it only predicts (held out)."""
        return rows, rows.iloc[:0]

    def objective(self) -> dict[str, Any]:
        return {}

    def loss(self, targets: np.ndarray) -> Loss:
        from w2s.core.losses import xent

        return xent

    def aux(self, tokenizer: Any, texts: list[str], targets: np.ndarray) -> Aux | None:
        return None

    @property
    def select(self) -> str | None:
        """The evaluation metric that picks the kept checkpoint (None: the last step)."""
        raise NotImplementedError

    @property
    def early_stopping(self) -> str:
        raise NotImplementedError

    def spec(self, splits: pd.DataFrame, label_names: list[str]) -> dict[str, Any]:
        """Everything that determines the trained model: its cache key."""
        return {
            "version": STRONG_VERSION,
            "role": self.kind,
            "strong": weights_only(self.strong_spec),
            "seed": self.cfg.seed,
            "labels": label_names,
            "objective": self.objective(),
            "rows": table_md5(splits[splits["split"].isin(PREDICT_SPLITS)], ["id", "text", "split"]),
            "targets": self.targets_md5(splits),
            "val_truth": table_md5(split_part(splits, "val"), ["id", "label"]),
            **self.extra_spec(),
        }

    def extra_spec(self) -> dict[str, Any]:
        """What else determines this kind of run (absent from every key when empty)."""
        return {}

    def job(self) -> dict[str, Any]:
        """What a training rank needs to rebuild this run (`from_job`)."""
        return {"kind": self.kind}

    @staticmethod
    def from_job(cfg: Config, job: dict[str, Any]) -> TrainingRun:
        """The run a launcher's job file describes."""
        return RUNS[job["kind"]].rebuild(cfg, job)

    @classmethod
    def rebuild(cls, cfg: Config, job: dict[str, Any]) -> TrainingRun:
        return cls(cfg)


class StudentRun(TrainingRun):
    """The weak-to-strong student on a label file. With `method`, that method's hooks set its
    loss and auxiliary term; without, it is a plain student (bootstrap intermediates, the
    probe students of weak-model selection)."""

    kind = "w2s"
    stage = "strong-w2s"
    predicts_transfer = True

    def __init__(
        self, cfg: Config, labels: LabelsRef, method: Method | None = None, fold: tuple[int, int] | None = None
    ) -> None:
        super().__init__(cfg)
        self.labels = labels
        self.method = method
        # (k, K): train on every transfer row outside fold k of K and predict fold k out of
        # sample (a cross-fitted intermediate student); None: train on all of transfer.
        self.fold = fold

    def split_training(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self.fold is None:
            return rows, rows.iloc[:0]
        k, n_folds = self.fold
        held = hash_folds(rows["id"], n_folds, f"crossfit-{self.cfg.seed}") == k
        if held.all() or not held.any():
            raise DataError(f"cross-fitting fold {k} of {n_folds} leaves no rows on one side of {len(rows)}")
        return rows[~held], rows[held]

    def extra_spec(self) -> dict[str, Any]:
        return {} if self.fold is None else {"fold": list(self.fold)}

    @classmethod
    def with_method(cls, cfg: Config, labels: LabelsRef) -> StudentRun:
        """The configured method's student."""
        return cls(cfg, labels, get_method(cfg.method)(cfg))

    def targets(self, transfer: pd.DataFrame, val: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Soft labels (N x K), or each member's (N x M x K) when the method reads them all."""
        members = self.method is not None and self.method.member_labels
        labels = read_weak_labels(Path(self.labels.path))
        column = "member_probs" if members else "weak_probs"
        if column not in labels.columns:
            raise DataError(f"{self.labels.path}: weak-label file has no '{column}' column")
        out = []
        for split, rows in (("transfer", transfer), ("val", val)):
            part = labels[labels["split"] == split]
            if split == "transfer" and self.fold is not None:  # the fold's training rows only
                part = part[part["id"].isin(rows["id"])]
            if list(part["id"]) != list(rows["id"]):
                raise DataError(f"weak-label ids do not match the {split} split's ids")
            out.append(
                np.stack([np.asarray(np.stack(v) if members else v, dtype=np.float32) for v in part[column].to_numpy()])
            )
        return out[0], out[1]

    def targets_md5(self, splits: pd.DataFrame) -> str:
        return self.labels.md5

    def objective(self) -> dict[str, Any]:
        return self.method.objective() if self.method is not None else {}

    def loss(self, targets: np.ndarray) -> Loss:
        own = self.method.student_loss(targets) if self.method is not None else None
        if own is not None:
            return own
        from w2s.core.losses import make_loss

        scfg = self.cfg.strong
        return make_loss(scfg.loss, getattr(scfg, scfg.loss, None))

    def aux(self, tokenizer: Any, texts: list[str], targets: np.ndarray) -> Aux | None:
        return self.method.student_aux(tokenizer, texts, targets) if self.method is not None else None

    @property
    def select(self) -> str | None:
        return SELECTION_METRICS[self.cfg.strong.early_stopping]

    @property
    def early_stopping(self) -> str:
        return self.cfg.strong.early_stopping

    def job(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": asdict(self.labels),
            "method_hooks": self.method is not None,
            "fold": None if self.fold is None else list(self.fold),
        }

    @classmethod
    def rebuild(cls, cfg: Config, job: dict[str, Any]) -> TrainingRun:
        labels = LabelsRef(**job["labels"])
        if job["method_hooks"]:
            return cls.with_method(cfg, labels)
        fold = job.get("fold")
        return cls(cfg, labels, fold=None if fold is None else (int(fold[0]), int(fold[1])))


class CeilingRun(TrainingRun):
    """The same strong model on transfer ground truth: the top of the PGR scale."""

    kind = "ceiling"
    stage = "strong-ceiling"

    @property
    def strong_spec(self) -> dict[str, Any]:
        spec = self.cfg.strong.model_dump(mode="json")
        return {k: spec[k] for k in CEILING_FIELDS}

    def targets(self, train: pd.DataFrame, val: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, None]:
        return np.eye(len(names), dtype=np.float32)[encode_labels(train["label"], names)], None

    def targets_md5(self, splits: pd.DataFrame) -> str:
        return table_md5(split_part(splits, self.train_split), ["id", "label"])

    @property
    def select(self) -> str | None:
        return "val_gt_acc"

    @property
    def early_stopping(self) -> str:
        return "gt_val"


class BudgetRun(CeilingRun):
    """The same strong model on the weak model's ground-truth budget (weak_train) alone: the
    baseline weak supervision has to beat to be worth it. It sees no other ground truth, so
    it keeps its last step (selecting on ground-truth val would spend labels the budget lacks).
    `strong.budget` may give it its own epochs and lr (its tuning, independent of the student's);
    unset, it trains exactly as the student does, and its cache key is what it always was."""

    kind = "budget"
    stage = "strong-budget"
    train_split = "weak_train"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg.model_copy(update={"strong": budget_strong(cfg.strong)}))

    @property
    def select(self) -> None:
        return None

    @property
    def early_stopping(self) -> str:
        return "none"


RUNS: dict[str, type[TrainingRun]] = {run.kind: run for run in (StudentRun, CeilingRun, BudgetRun)}


def train_strong(splits_ref: SplitsRef, run: TrainingRun, cache: ArtifactCache) -> ModelRef:
    """Train (or reuse, by content hash) the model of `run`."""
    splits = pd.read_parquet(splits_ref.path)
    spec = run.spec(splits, splits_ref.label_names)
    key = cache_key("strong", spec)
    hit = cache.lookup("strong", key)
    if hit is not None:
        return ModelRef(run.kind, str(hit), key, True, read_json(hit / "info.json"))
    with cache.build("strong", key, spec) as folder:
        info = _fit(splits_ref, splits, run, folder, cache)
    return ModelRef(run.kind, str(cache.path("strong", key)), key, False, info)


def _inputs(
    model: Any,
    tokenizer: Any,
    splits: pd.DataFrame,
    parts: list[pd.DataFrame],
    scfg: StrongConfig,
    cache: ArtifactCache,
) -> tuple[Any, list[Any], Any]:
    """What trains and what it reads: the whole classifier on token ids (finetune), or only its
    head on cached embeddings (frozen); returns (trainee, one dataset per part, train settings)."""
    from w2s.core.models.batching import encode

    if scfg.mode == "finetune":
        return model, [encode(tokenizer, df["text"].tolist(), scfg.max_length) for df in parts], scfg
    import torch

    from w2s.core.embeddings import split_embeddings, take
    from w2s.core.frozen import Embedded, HeadOnly

    table = split_embeddings(splits, scfg, cache)
    data = [Embedded(torch.from_numpy(take(table, df["id"]).astype(np.float32))) for df in parts]
    return HeadOnly(model), data, scfg.model_copy(update=scfg.frozen.model_dump())


@dataclass
class Setup:
    """Everything one training run needs, built the same way in-process and in every rank."""

    model: Any  # the transformer classifier (torch.nn.Module)
    tokenizer: Any  # its tokenizer
    trainee: Any  # what the optimiser updates: the model, or its head alone (frozen mode)
    parts: list[pd.DataFrame]  # the rows it trains on, val, test[, ood_test][, held-out training rows]
    encs: list[Any]  # one dataset per part (token ids, or cached embeddings)
    settings: StrongConfig  # the training settings (frozen mode's replace the fine-tuning ones)
    targets: np.ndarray  # training targets on the training split
    loss: Loss
    evaluate: Any  # model -> {metric: value} on val
    select: str | None  # the metric that picks the kept checkpoint
    aux: Aux | None


def training_setup(names: list[str], splits: pd.DataFrame, run: TrainingRun, cache: ArtifactCache) -> Setup:
    """Model, data, targets, loss, evaluator and selection rule of one training run."""
    import torch

    from w2s.core.models.batching import predict_logits
    from w2s.core.models.classifier import build_classifier, set_dropout

    scfg = run.cfg.strong
    train_rows, held = run.split_training(split_part(splits, run.train_split))
    val = split_part(splits, "val")
    evals = [split_part(splits, s) for s in ("test", "ood_test") if (splits["split"] == s).any()]
    if len(held):  # held-out training rows are predicted like the evaluation splits, never fit
        evals.append(held)
    targets, val_targets = run.targets(train_rows, val, names)
    # Blind splits (weak-model selection) carry no val ground truth: then only weak agreement.
    val_truth = encode_labels(val["label"], names) if val["label"].notna().all() else None
    tokenizer, model = build_classifier(scfg, len(names), run.cfg.seed)
    if scfg.dropout is not None:
        set_dropout(model, scfg.dropout)
    parts = [train_rows, val, *evals]
    trainee, encs, settings = _inputs(model, tokenizer, splits, parts, scfg, cache)
    loss = run.loss(targets)
    enc_val = encs[1]

    def evaluate(m: Any) -> dict[str, float]:
        pred = predict_logits(m, enc_val, scfg.eval_batch_size).argmax(1)
        point = {}
        if val_truth is not None:
            point["val_gt_acc"] = float(np.mean(pred == val_truth))
        if val_targets is not None:
            soft = val_targets
            if val_targets.ndim == 3:  # member labels (N x M x K): the loss's current mixture of them
                soft = cast(Any, loss).target(torch.as_tensor(val_targets)).numpy()
            point["val_weak_acc"] = float(np.mean(pred == soft.argmax(1)))
        return point

    aux = run.aux(tokenizer, train_rows["text"].tolist(), targets)
    return Setup(model, tokenizer, trainee, parts, encs, settings, targets, loss, evaluate, run.select, aux)


def loss_report(loss: Loss) -> dict[str, Any]:
    """What a loss learned besides the model (a weak ensemble's weights), if it reports any."""
    report = getattr(loss, "report", None)
    return report() if callable(report) else {}


def resolved_backend(scfg: StrongConfig) -> str:
    """torch or deepspeed; `auto` picks DeepSpeed when a CUDA device is present."""
    if scfg.backend != "auto":
        return scfg.backend
    import torch

    return "deepspeed" if torch.cuda.is_available() and scfg.mode == "finetune" else "torch"


def _fit(
    splits_ref: SplitsRef, splits: pd.DataFrame, run: TrainingRun, folder: Path, cache: ArtifactCache
) -> dict[str, Any]:
    """Train the model of `run`, write its predictions, weights and training record into `folder`."""
    from w2s.core.links import link_of
    from w2s.core.models.classifier import save_classifier, trainable_parameters

    names = splits_ref.label_names
    scfg = run.cfg.strong
    start = time.perf_counter()
    s = training_setup(names, splits, run, cache)
    backend = resolved_backend(scfg)
    result, extras = _train(s, run, backend, names, splits_ref.path, cache)
    link = link_of(s.loss)  # how its outputs become probabilities (softmax of logits, or not)
    rows, probs = _predict(s, run, folder, link)
    shards = extras.pop("shards", None)
    if shards is not None:  # which transfer rows each rank trained on (the sharding record)
        write_json(folder / "shards.json", shards)
    meta = {
        "num_labels": len(names),
        "label_names": names,
        "max_length": scfg.max_length,
        "base_model": scfg.model,
        "link": link,
    }
    save_classifier(s.model, s.tokenizer, folder / "model", {**meta, "num_layers": scfg.num_layers})
    trainable, total = trainable_parameters(s.model)
    info = {
        "role": run.kind,
        "selection": s.select,
        "early_stopping": run.early_stopping,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_score": result.best_score,
        "train_seconds": round(result.seconds, 2),
        "examples_per_s": round(result.examples_per_s, 2),
        "mode": scfg.mode,
        "truncated_texts": getattr(s.encs[0], "truncated", 0),
        "curve": result.curve,
        "backend": backend,
        "base_model": scfg.model,
        "pooling": s.model.pooling,
        "precision": scfg.precision,
        "lora_r": scfg.lora.r,
        "trainable_params": trainable,
        "total_params": total,
        **extras,
    }
    if run.predicts_transfer and scfg.mode == "finetune":
        # Flip rate under the lexicon perturbation: a robustness diagnostic for every student.
        info["flip_rate"] = _flip_rate(s, scfg, probs[rows["split"].to_numpy() == "test"], link)
    info["seconds"] = round(time.perf_counter() - start, 2)
    write_json(folder / "info.json", info)
    return info


def _train(
    s: Any, run: TrainingRun, backend: str, names: list[str], splits_path: str, cache: ArtifactCache
) -> tuple[Any, dict[str, Any]]:
    """Train in this process, or on the DeepSpeed engine in its ranks; the result and extras."""
    import torch

    from w2s.core.train import train

    if backend == "deepspeed":
        from w2s.pipeline.distributed.launch import train_distributed

        result, extras = train_distributed(s.model, run.cfg, run.job(), names, splits_path, cache)
        if torch.cuda.is_available():  # predict where the ranks trained
            s.model.to("cuda")
        return result, extras
    result = train(
        s.trainee, s.encs[0], s.targets, s.settings, run.cfg.seed, s.loss, s.evaluate, s.select,
        desc=run.stage, aux=s.aux,
    )  # fmt: skip
    return result, loss_report(s.loss)


def _predict(s: Any, run: TrainingRun, folder: Path, link: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Predict every split the model predicts; write them in the splits table's row order."""
    from w2s.core.links import probabilities
    from w2s.core.models.batching import predict_logits

    transfer, val, *evals = s.parts
    enc_train, enc_val, *enc_evals = s.encs
    # The student also predicts its own training split: its misfit to the weak labels there is
    # what the Charikar et al. bound relates to the gain.
    parts = [(transfer, enc_train)] if run.predicts_transfer else []
    parts += [(val, enc_val), *zip(evals, enc_evals, strict=True)]
    rows = pd.concat([df for df, _ in parts])
    batch = run.cfg.strong.eval_batch_size
    logits = [predict_logits(s.trainee, enc, batch, desc=f"predict {df['split'].iloc[0]}") for df, enc in parts]
    probs = probabilities(np.concatenate(logits), link)
    # In the splits table's row order, so held-out training rows sit among the rows trained on.
    order = np.argsort(rows.index.to_numpy(), kind="stable")
    write_predictions(folder / "preds.parquet", rows["id"].iloc[order], rows["split"].iloc[order], probs[order])
    return rows, probs


def _flip_rate(s: Any, scfg: Any, test_probs: np.ndarray, link: str) -> float:
    """How often the test prediction changes when the irrelevant tokens are dropped."""
    from w2s.core.links import probabilities
    from w2s.core.models.batching import encode, predict_logits
    from w2s.core.perturbation import flip_rate, perturb_text

    test = s.parts[2]
    enc_pert = encode(s.tokenizer, [perturb_text(t, FLIP_DROP_FRAC) for t in test["text"]], scfg.max_length)
    pert = probabilities(predict_logits(s.model, enc_pert, scfg.eval_batch_size, desc="predict perturbed test"), link)
    return flip_rate(test_probs, pert)

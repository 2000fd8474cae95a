"""Typed experiment configuration: `params.yaml` parsed into pydantic models.

Every field has a type, a default and a help text; unknown keys and wrong types are errors that
name the offending key. `--set a.b=c` overrides are applied to the raw mapping before validation
so they go through exactly the same checks as the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from w2s.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    name: str | None = Field(
        "election-tweets",
        description="Bundled corpus (election-tweets, reuters-r8, reuters-r52, 20newsgroups). "
        "Ignored when `path` or `hf_name` is set.",
    )
    path: str | None = Field(
        None, description="Local CSV / TSV / JSONL / Parquet file; relative paths are resolved "
        "against the project root and may not leave it."
    )
    hf_name: str | None = Field(
        None, description="Hugging Face dataset: a hub id or a folder written by save_to_disk."
    )
    hf_split: str = Field("train", description="Split of the HF dataset to read.")
    text_column: str = Field("text", description="Column holding the input text (file / HF sources).")
    label_column: str = Field("label", description="Column holding the class label.")
    id_column: str | None = Field(
        None, description="Column with unique example ids; row numbers are used when unset."
    )
    labels: list[str] | None = Field(
        None, description="Declared label set; any other label value fails validation. "
        "Inferred from the data when unset."
    )
    dedupe: bool = Field(
        True, description="Drop exact duplicate texts at ingest (keeps the first), so a text "
        "can never land in both a training split and the test split."
    )
    max_rows: int | None = Field(
        None, ge=10, description="Deterministically subsample the table to this many rows."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.path and self.hf_name:
            raise ValueError("set only one of data.path and data.hf_name")
        if not (self.path or self.hf_name or self.name):
            raise ValueError("one of data.name, data.path or data.hf_name is required")
        return self


class SplitConfig(_Strict):
    weak_train: int = Field(200, ge=2, description="Ground-truth examples for the weak supervisor.")
    transfer: int = Field(2000, ge=2, description="Examples the weak model labels for the student.")
    val: int = Field(400, ge=2, description="Weakly labeled examples for early stopping.")
    test: int = Field(1000, ge=2, description="Ground-truth examples for evaluation only.")
    min_test: int = Field(
        100, ge=1, description="Smallest test split accepted: below it PGR is noise."
    )
    ood_groups: list[str] = Field(
        default_factory=list, description="Distribution shift: rows of these groups (the data's "
        "`group` column, e.g. held-out newsgroup topics) never enter weak_train/transfer/val/test "
        "and form the `ood_test` split instead. Empty: no shift."
    )
    ood_test: int = Field(1000, ge=2, description="Size of the ood_test split when ood_groups is set.")

    @model_validator(mode="after")
    def _test_size(self) -> SplitConfig:
        if self.test < self.min_test:
            raise ValueError(f"split.test={self.test} is below split.min_test={self.min_test}")
        if self.ood_groups and self.ood_test < self.min_test:
            raise ValueError(f"split.ood_test={self.ood_test} is below split.min_test={self.min_test}")
        return self


class TfidfConfig(_Strict):
    max_features: int = Field(20000, ge=10, description="Vocabulary size of the TF-IDF vectoriser.")
    ngram_max: int = Field(2, ge=1, le=3, description="Largest word n-gram.")
    C: float = Field(
        10.0, gt=0, description="Inverse L2 regularisation of the logistic regression; weak "
        "regularisation gives sharper soft labels, which the student learns from faster."
    )


class EncoderTrainConfig(_Strict):
    model: str = Field(
        "minilm-l6", description="Encoder: a bundled alias (minilm-l6), a local folder, or a hub id."
    )
    num_layers: int | None = Field(
        None, ge=1, description="Keep only the first N transformer layers (a weaker model)."
    )
    max_length: int = Field(64, ge=8, le=512, description="Tokens per example (truncation).")
    epochs: float = Field(2.0, gt=0, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, description="Examples per optimiser step.")
    lr: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_frac: float = Field(0.1, ge=0, lt=1, description="Fraction of steps of linear warm-up before cosine decay.")
    evals_per_epoch: int = Field(4, ge=1, description="Early-stopping evaluations per epoch.")
    eval_batch_size: int = Field(128, ge=1, description="Examples per forward pass at inference.")


class WeakConfig(_Strict):
    kind: Literal["tfidf", "encoder"] = Field(
        "tfidf", description="tfidf: TF-IDF + logistic regression; encoder: a (truncated) transformer."
    )
    tfidf: TfidfConfig = Field(default_factory=TfidfConfig)
    encoder: EncoderTrainConfig = Field(
        default_factory=lambda: EncoderTrainConfig(num_layers=1, epochs=5.0, lr=1e-4),
        description="Settings when kind=encoder.",
    )


class LogConfConfig(_Strict):
    aux_coef: float = Field(0.5, ge=0, le=1, description="Final weight of the student's own hardened labels.")
    warmup_frac: float = Field(
        0.2, ge=0, le=1, description="Fraction of training over which the weight ramps up linearly."
    )
    buffer_size: int = Field(256, ge=0, description="Recent rows kept for the binary hardening threshold.")


class ProductConfig(_Strict):
    weak_exp: float = Field(1.0, ge=0, description="Exponent of the weak probabilities in the target.")
    strong_exp: float = Field(1.0, ge=0, description="Exponent of the student's probabilities in the target.")


class FrozenConfig(_Strict):
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the head on frozen features.")
    epochs: float = Field(30.0, gt=0, description="Passes over the cached embeddings.")
    batch_size: int = Field(64, ge=1, description="Embeddings per step.")


class DeepSpeedConfig(_Strict):
    stage: Literal[0, 1, 2, 3] = Field(
        2, description="ZeRO stage: 0 off, 1 optimizer states, 2 + gradients, 3 + parameters."
    )
    offload_optimizer: bool = Field(
        False, description="Keep optimizer states in CPU memory (DeepSpeedCPUAdam; its op compiles on first use)."
    )
    offload_params: bool = Field(False, description="ZeRO-3 only: keep parameters in CPU memory between uses.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Training precision; bf16 / fp16 need a GPU (fp16 uses dynamic loss scaling)."
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimiser step.")
    grad_clip: float = Field(1.0, ge=0, description="Gradient-norm clipping (0: off).")
    config_file: str | None = Field(
        None, description="An explicit DeepSpeed JSON config; it replaces the generated one (batch "
        "sizes must agree with strong.batch_size, strong.processes and grad_accum)."
    )


class DistributedConfig(_Strict):
    processes: int = Field(1, ge=1, description="Ranks per node that train the strong model together.")
    launcher: Literal["torchrun", "deepspeed"] = Field(
        "torchrun", description="How ranks are started: torchrun (one node) or the DeepSpeed launcher "
        "(needed for a hostfile)."
    )
    hostfile: str | None = Field(
        None, description="DeepSpeed hostfile (`host slots=N` lines) for multi-node training; "
        "implies launcher=deepspeed. The project folder must be on a filesystem every host shares."
    )
    master_port: int = Field(29500, ge=1024, le=65535, description="Rendezvous port of rank 0.")
    checkpoint_every: int = Field(
        0, ge=0, description="Save an engine checkpoint every N optimiser steps (0: at each evaluation); "
        "a killed run resumes from the last one."
    )


class StrongConfig(EncoderTrainConfig):
    backend: Literal["auto", "torch", "deepspeed"] = Field(
        "auto", description="torch: the plain PyTorch loop in-process; deepspeed: the DeepSpeed engine "
        "in `distributed.processes` ranks (gloo on CPU, NCCL on GPU); auto: deepspeed when a CUDA "
        "device is present."
    )
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig, description="Settings of backend=deepspeed.")
    distributed: DistributedConfig = Field(default_factory=DistributedConfig, description="Ranks and launcher.")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Override every dropout probability of the encoder and head "
        "(None keeps the pretrained model's)."
    )
    mode: Literal["finetune", "frozen"] = Field(
        "finetune", description="finetune: train every weight; frozen: embed once (cached) and "
        "train only the head (fast; see `frozen`)."
    )
    frozen: FrozenConfig = Field(default_factory=FrozenConfig, description="Settings of mode=frozen.")
    loss: Literal["xent", "logconf", "product"] = Field(
        "xent", description="Student loss: xent (soft cross-entropy), logconf (auxiliary "
        "confidence), product (product-of-experts target)."
    )
    logconf: LogConfConfig = Field(default_factory=LogConfConfig, description="Settings of loss=logconf.")
    product: ProductConfig = Field(default_factory=ProductConfig, description="Settings of loss=product.")
    early_stopping: Literal["weak_val", "oracle", "none"] = Field(
        "weak_val", description="weak_val: best checkpoint on weak-labeled val (honest); "
        "oracle: on ground-truth val (an ablation, flagged in the results); none: last step."
    )


class PerturbConfig(_Strict):
    weight: float = Field(
        0.5, ge=0, description="method=perturb: weight of CE(f(x~), target), x~ being the text with "
        "its irrelevant tokens dropped (MLX, reduced)."
    )
    drop_frac: float = Field(
        1.0, gt=0, le=1, description="Fraction of the irrelevant tokens dropped in each perturbed copy."
    )


class BootstrapConfig(_Strict):
    intermediate_layers: list[int] = Field(
        [2], min_length=1, description="Layer counts of the intermediate students, weakest first "
        "(each is the strong model truncated to that many blocks)."
    )


class SmoothConfig(_Strict):
    k: int = Field(10, ge=1, description="Neighbours per node of the kNN graph (cosine, on strong embeddings).")
    mu: float = Field(0.8, ge=0, lt=1, description="Label-spreading weight of the graph: F <- mu S F + (1-mu) Y.")
    max_iter: int = Field(200, ge=1, description="Iteration cap of label spreading.")
    tol: float = Field(1e-6, gt=0, description="Stop when no entry of F moves more than this.")


class SelectiveConfig(_Strict):
    tau: float | None = Field(
        None, ge=0, le=1, description="Gate threshold: self-label where P(IK) (or, for "
        "method=confidence, the strong head's confidence) is at least tau. None: chosen on the "
        "weak budget by cross-fitting (no other ground truth is read)."
    )
    smooth: bool = Field(False, description="Use graph-smoothed weak labels outside the gate.")
    folds: int = Field(5, ge=2, description="Cross-fitting folds on the weak budget.")
    C: float = Field(1.0, gt=0, description="Inverse L2 regularisation of the strong head and the P(IK) probe.")


class EnsembleMember(_Strict):
    weak: WeakConfig = Field(default_factory=WeakConfig, description="The member's weak supervisor.")
    subset_frac: float = Field(
        1.0, gt=0, le=1, description="Train on this deterministic fraction of weak_train (stratified)."
    )
    subset_seed: int = Field(0, ge=0, description="Which subset, when subset_frac < 1.")


class EnsembleConfig(_Strict):
    members: dict[str, EnsembleMember] = Field(
        default_factory=lambda: {
            "tfidf": EnsembleMember(),
            "minilm-1l": EnsembleMember(weak=WeakConfig(kind="encoder")),
            "tfidf-half": EnsembleMember(subset_frac=0.5, subset_seed=1),
        },
        description="Named weak supervisors of the ensemble (at least two).",
    )
    init: Literal["uniform", "entropy"] = Field(
        "uniform", description="Initial simplex weights: uniform, or inversely proportional to "
        "each member's mean prediction entropy on transfer."
    )
    lr: float = Field(0.5, gt=0, description="SGD learning rate of the weights, one step after each student step.")
    freeze_frac: float = Field(0.1, ge=0, le=1, description="Fraction of training with the weights frozen.")
    easy_frac: float = Field(
        0.25, ge=0, le=1, description="Fraction of training on easy samples only (all members agree)."
    )

    @model_validator(mode="after")
    def _two_members(self) -> EnsembleConfig:
        if len(self.members) < 2:
            raise ValueError("ensemble.members needs at least two weak supervisors")
        return self


class CorrectorConfig(_Strict):
    hidden: int = Field(64, ge=1, description="Hidden units of the residual corrector r(emb, p_w).")
    steps: int = Field(300, ge=0, description="Full-batch Adam steps on the weak budget.")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(1e-2, ge=0, description="L2 penalty that keeps the residual small.")
    folds: int = Field(5, ge=2, description="Cross-fitting folds for out-of-fold weak predictions.")


class ContrastiveConfig(_Strict):
    alpha: float = Field(
        0.5, ge=0, le=1, description="Score = logit_post - (1 - alpha) logit_pre; alpha=1 gives the post labels."
    )
    pre_frac: float = Field(
        0.25, gt=0, lt=1, description="The `pre` weak model is the same supervisor trained on this "
        "fraction of the weak budget (an earlier, less fine-tuned state)."
    )
    plausibility: float = Field(0.1, gt=0, le=1, description="Keep classes with p_post >= this * max p_post.")


class SelectionConfig(_Strict):
    candidates: dict[str, WeakConfig] = Field(
        default_factory=dict, description="Named weak supervisors to choose from by predicted strong "
        "error (Err_w - misfit); empty: use `weak` as is."
    )
    student_mode: Literal["frozen", "finetune"] = Field(
        "frozen", description="How the probe student is fit to each candidate's labels."
    )
    folds: int = Field(5, ge=2, description="Cross-validation folds for each candidate's Err_w.")


class RegisterConfig(_Strict):
    enabled: bool = Field(True, description="Log the student as a pyfunc and register a version.")
    model_name: str = Field("w2s-strong", min_length=1, description="Registered model name.")
    alias: str = Field("challenger", min_length=1, description="Alias set on the new version.")


# Metrics a promotion floor may name: the pipeline's contract metrics (docs: DESIGN "Metric names").
FLOOR_METRICS = ("weak_acc", "ceiling_acc", "w2s_acc", "pgr", "weak_auroc", "ceiling_auroc", "w2s_auroc",
                 "pgr_auroc", "agreement", "agreement_weak_correct", "agreement_weak_wrong", "misfit",
                 "predicted_gain", "actual_gain", "ece")


class PromotionConfig(_Strict):
    metric: Literal["acc", "auroc"] = Field(
        "acc", description="Score compared between challenger and champion on the evaluation set.")
    min_margin: float = Field(
        0.0, ge=-1.0, le=1.0, description="The challenger must beat the champion's score by at least "
        "this much (0: not worse; a negative value tolerates a small loss).")
    floors: dict[str, float] = Field(
        default_factory=lambda: {"pgr": 0.0}, description="Hard floors on the challenger run's "
        "metrics, e.g. {pgr: 0.2}: the metric must be defined (PGR is null when ceiling <= weak) "
        "and at least the value. Checked even when there is no champion yet.")
    eval_set: str | None = Field(
        None, description="Fixed labelled evaluation file (CSV / TSV / JSONL / Parquet, columns "
        "named by data.text_column / data.label_column), relative to the project. Unset: the "
        "test split of the challenger's run, recomputed from the project's data.")
    champion_alias: str = Field("champion", min_length=1, description="Alias the gate moves.")

    @model_validator(mode="after")
    def _known_floors(self) -> PromotionConfig:
        unknown = sorted(set(self.floors) - set(FLOOR_METRICS))
        if unknown:
            raise ValueError(f"promotion.floors names unknown metric '{unknown[0]}' "
                             f"(one of {', '.join(FLOOR_METRICS)})")
        return self


class TrackingConfig(_Strict):
    experiment: str = Field("w2s", min_length=1, description="MLflow experiment name.")


class Config(_Strict):
    seed: int = Field(0, ge=0, description="Seed for splits, weak and strong training.")
    method: Literal["naive", "bootstrap", "confidence", "selective", "smooth", "ensemble", "corrector",
                    "contrastive", "perturb"] = Field(
        "naive", description="naive: the student learns the weak labels directly; bootstrap: "
        "through intermediate students; confidence / selective: the strong model's own labels "
        "where its confidence / P(IK) passes the gate, weak labels elsewhere; smooth: label "
        "spreading on a kNN graph; ensemble: several weak supervisors with learned weights "
        "(RAVEN); corrector: a residual weak-label corrector; contrastive: ConG-style labels "
        "from a pre and a post weak model; perturb: naive plus perturbation consistency (MLX)."
    )
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    weak: WeakConfig = Field(default_factory=WeakConfig)
    strong: StrongConfig = Field(default_factory=StrongConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    smooth: SmoothConfig = Field(default_factory=SmoothConfig, description="method=smooth (and selective.smooth).")
    selective: SelectiveConfig = Field(default_factory=SelectiveConfig, description="method=selective / confidence.")
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig, description="method=ensemble.")
    corrector: CorrectorConfig = Field(default_factory=CorrectorConfig, description="method=corrector.")
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig, description="method=contrastive.")
    perturb: PerturbConfig = Field(default_factory=PerturbConfig, description="method=perturb.")
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    registry: RegisterConfig = Field(default_factory=RegisterConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)

    @model_validator(mode="after")
    def _method_fits_mode(self) -> Config:
        if self.method == "perturb" and self.strong.mode == "frozen":
            raise ValueError("method=perturb perturbs the text, so it needs strong.mode=finetune")
        if self.strong.backend == "deepspeed" and self.strong.mode == "frozen":
            raise ValueError("strong.backend=deepspeed trains the whole model: it needs strong.mode=finetune")
        return self

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named top-level sections (all of them when none are named)."""
        dumped = self.model_dump(mode="json")
        picked = {k: dumped[k] for k in (sections or tuple(dumped))}
        return stable_hash(picked)


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{k}' is not a section")
        node = child
    old = node.get(keys[-1])
    if isinstance(old, dict) and isinstance(value, dict):
        node[keys[-1]] = {**old, **value}  # a section given as a mapping updates, not replaces
    else:
        node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value`; the value is parsed as YAML so numbers, booleans and lists work."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{loc}'"
    return f"config key '{loc}': {msg}" if loc else f"config: {msg}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply `key=value` overrides, and validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}".splitlines()[0]) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        raw = loaded or {}
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(raw, key, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None

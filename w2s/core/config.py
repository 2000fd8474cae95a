"""The typed sections of the experiment configuration that every method shares.

Every field has a type, a default and a help text; unknown keys and wrong types are errors that
name the offending key. Each W2S method brings its own section (`w2s.methods`); `w2s.config`
composes them with these into the full `Config`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """The base of every config section, methods' own included: unknown keys are errors, and so
    is an infinite or NaN number in any float field (`.inf` epochs would pass `gt=0` and fail
    only after the weak model trained)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# A registered model name goes into MLflow search filters (`name='...'`, which cannot carry a
# quote) and into `models:/<name>/<version>` and `<name>@<alias>` references; an alias follows
# MLflow's own rule for alias names. Both are refused at load, before anything is trained.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")
_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")


def _model_name(value: str) -> str:
    if not _MODEL_NAME.fullmatch(value):
        raise ValueError(
            f"model name {value!r} may hold only letters, digits, '.', '_' and '-' (starting with a letter "
            "or digit, at most 256 characters): it goes into MLflow search filters and models:/ URIs"
        )
    return value


def _alias(value: str) -> str:
    if not _ALIAS.fullmatch(value):
        raise ValueError(f"alias {value!r} may hold only letters, digits, '_' and '-' (MLflow's alias names)")
    if value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value):
        raise ValueError(f"alias {value!r} is reserved by MLflow ('latest' and v<number> name versions)")
    return value


ModelName = Annotated[str, AfterValidator(_model_name)]
AliasName = Annotated[str, AfterValidator(_alias)]


class DataConfig(Section):
    name: str | None = Field(
        "election-tweets",
        description="Bundled corpus (election-tweets, reuters-r8, reuters-r52, 20newsgroups, "
        "20newsgroups-super) or standard W2S task (sciq, sciq_with_support, boolq, cosmos_qa, "
        "anli-r2, amazon_polarity, anthropic_hh, hellaswag). A corpus is ignored when `path` or "
        "`hf_name` is set; a task reads `hf_name` (when set) as its own data, else its hub id.",
    )
    path: str | None = Field(
        None,
        description="Local CSV / TSV / JSONL / Parquet file; relative paths are resolved "
        "against the project root and may not leave it.",
    )
    hf_name: str | None = Field(
        None,
        description="Hugging Face dataset: a hub id or a folder written by save_to_disk. With a task "
        "`name`, a copy of that task's data in its hub schema: a save_to_disk folder or a folder of "
        "`<split>-*.parquet` files (the task picks its own splits), or another hub id.",
    )
    hf_split: str = Field("train", description="Split of the HF dataset to read (not used by tasks).")
    text_column: str = Field("text", description="Column holding the input text (file / HF sources).")
    label_column: str = Field("label", description="Column holding the class label.")
    id_column: str | None = Field(None, description="Column with unique example ids; row numbers are used when unset.")
    group_column: str | None = Field(
        None,
        description="Column naming each row's group (a topic, a source, a time period), for distribution-shift "
        "splits: split.ood_groups holds those groups out (file / HF sources; the bundled 20newsgroups-super "
        "has its topics as groups already).",
    )
    labels: list[str] | None = Field(
        None,
        description="Declared label set; any other label value fails validation. Inferred from the data when unset.",
    )
    dedupe: bool = Field(
        True,
        description="Drop exact duplicate texts at ingest (keeps the first), so a text "
        "can never land in both a training split and the test split. A paired task's item goes whole.",
    )
    max_rows: int | None = Field(
        None, ge=10, description="Deterministically subsample the table to this many rows (whole items when paired)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.path and self.hf_name:
            raise ValueError("set only one of data.path and data.hf_name")
        if not (self.path or self.hf_name or self.name):
            raise ValueError("one of data.name, data.path or data.hf_name is required")
        return self

    @model_validator(mode="after")
    def _known_name(self) -> DataConfig:
        # Imported here: the data package imports this module, and pandas is loaded by then anyway.
        from w2s.core.data.bundled import CORPORA
        from w2s.core.data.suite import TASKS

        if self.name is not None and self.name not in CORPORA and self.name not in TASKS:
            raise ValueError(
                f"data.name '{self.name}' is neither a bundled corpus ({', '.join(CORPORA)}) "
                f"nor a task ({', '.join(TASKS)})"
            )
        return self


Rows = Annotated[int, Field(ge=2)] | Annotated[float, Field(gt=0, lt=1)]


class SplitConfig(Section):
    """Split sizes count rows (an integer) or take a fraction of the rows there are (a number
    between 0 and 1). A paired task (sciq, cosmos_qa, anthropic_hh, ...) is split by item, so both
    rows of a pair share a split and an odd size rounds up to a whole pair."""

    weak_train: Rows = Field(200, description="Ground-truth examples for the weak supervisor (rows, or a fraction).")
    transfer: Rows = Field(2000, description="Examples the weak model labels for the student (rows, or a fraction).")
    val: Rows = Field(400, description="Weakly labeled examples for early stopping (rows, or a fraction).")
    test: Rows = Field(1000, description="Ground-truth examples for evaluation only (rows, or a fraction).")
    scale_to_fit: bool = Field(
        True,
        description="When the four sizes need more rows than the data has, scale them down in proportion "
        "(a warning says so) instead of failing; the test split must still hold split.min_test rows.",
    )
    min_test: int = Field(100, ge=1, description="Smallest test split accepted: below it PGR is noise.")
    ood_groups: list[str] = Field(
        default_factory=list,
        description="Distribution shift: rows of these groups (data.group_column, e.g. held-out newsgroup "
        "topics) never enter weak_train/transfer/val/test and form the `ood_test` split instead. Empty: no shift.",
    )
    ood_test: int = Field(1000, ge=2, description="Size of the ood_test split when ood_groups is set.")
    source_groups: list[str] = Field(
        default_factory=list,
        description="Weak supervision from a shifted source: weak_train is drawn only from rows of "
        "these groups (the data's `group` column) and transfer, val and test only from the other "
        "groups (outside ood_groups), so the weak supervisors label a target they were not trained "
        "on (RAVEN's setting). Empty: every split from the same groups.",
    )

    @model_validator(mode="after")
    def _test_size(self) -> SplitConfig:
        if isinstance(self.test, int) and self.test < self.min_test:
            raise ValueError(f"split.test={self.test} is below split.min_test={self.min_test}")
        if sum(v for v in (self.weak_train, self.transfer, self.val, self.test) if isinstance(v, float)) > 1:
            raise ValueError("the split fractions add up to more than 1")
        if self.ood_groups and self.ood_test < self.min_test:
            raise ValueError(f"split.ood_test={self.ood_test} is below split.min_test={self.min_test}")
        both = sorted(set(self.source_groups) & set(self.ood_groups))
        if both:
            raise ValueError(f"split.source_groups and split.ood_groups share group(s) {both}")
        return self


class TfidfConfig(Section):
    max_features: int = Field(20000, ge=10, description="Vocabulary size of the TF-IDF vectoriser.")
    ngram_max: int = Field(2, ge=1, le=3, description="Largest word n-gram.")
    C: float = Field(
        10.0,
        gt=0,
        description="Inverse L2 regularisation of the logistic regression; weak "
        "regularisation gives sharper soft labels, which the student learns from faster.",
    )


class LoraConfig(Section):
    r: int = Field(0, ge=0, description="LoRA rank; 0 (the default) trains every weight instead of adapters.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapters' input.")
    target_modules: Literal["auto"] | list[str] = Field(
        "auto",
        description="Module names to adapt; auto: the attention and MLP projections of the "
        "architecture (GPT-2, GPT-NeoX, Llama, Qwen2, Mistral, Gemma, Phi-3, BERT, RoBERTa, MPNet).",
    )


class EncoderTrainConfig(Section):
    model: str = Field(
        "minilm-l6",
        description="Transformer: a bundled alias (minilm-l6, mpnet-base), a local folder written by "
        "save_pretrained, or a hub id; an encoder or a causal LM (GPT-2, Pythia, Llama, Qwen2, ...).",
    )
    num_layers: int | None = Field(
        None, ge=1, description="Keep only the first N transformer blocks (a weaker model of the same family)."
    )
    pooling: Literal["auto", "mean", "last"] = Field(
        "auto",
        description="Text representation the head reads: last (the last real token, what a causal LM "
        "has read the whole text at), mean (attention-masked mean); auto: last for decoders, mean for encoders.",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters (peft); the head always trains.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="Compute precision: bf16 / fp16 autocast with fp32 trainable weights (fp16 adds "
        "loss scaling and needs a GPU). With LoRA, the frozen base is held in the 16-bit dtype.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute each block's activations in the backward pass (less memory, ~30% more compute)."
    )
    max_length: int = Field(64, ge=8, le=512, description="Tokens per example (truncation).")
    epochs: float = Field(2.0, gt=0, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, description="Examples per optimiser step.")
    lr: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_frac: float = Field(0.1, ge=0, lt=1, description="Fraction of steps of linear warm-up before cosine decay.")
    evals_per_epoch: int = Field(4, ge=1, description="Early-stopping evaluations per epoch.")
    eval_batch_size: int = Field(128, ge=1, description="Examples per forward pass at inference.")


class WeakConfig(Section):
    kind: Literal["tfidf", "encoder"] = Field(
        "tfidf", description="tfidf: TF-IDF + logistic regression; encoder: a (truncated) transformer."
    )
    tfidf: TfidfConfig = Field(default_factory=TfidfConfig)
    encoder: EncoderTrainConfig = Field(
        default_factory=lambda: EncoderTrainConfig(num_layers=1, epochs=5.0, lr=1e-4),
        description="Settings when kind=encoder.",
    )


class LogConfConfig(Section):
    aux_coef: float = Field(0.5, ge=0, le=1, description="Final weight of the student's own hardened labels.")
    warmup_frac: float = Field(
        0.2, ge=0, le=1, description="Fraction of training over which the weight ramps up linearly."
    )
    buffer_size: int = Field(256, ge=0, description="Recent rows kept for the binary hardening threshold.")


class ProductConfig(Section):
    weak_exp: float = Field(1.0, ge=0, description="Exponent of the weak probabilities in the target.")
    strong_exp: float = Field(1.0, ge=0, description="Exponent of the student's probabilities in the target.")


class FrozenConfig(Section):
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the head on frozen features.")
    epochs: float = Field(30.0, gt=0, description="Passes over the cached embeddings.")
    batch_size: int = Field(64, ge=1, description="Embeddings per step.")
    embed_layers: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description="Encoders only: when the embeddings of strong.num_layers are computed, also cache "
        "those of these truncations of strong.model (its first N blocks) from the same forward pass, so "
        "a sweep over strong.num_layers embeds each row once. They equal each truncated model's own "
        "embeddings. Empty: only strong.num_layers. Changes no model, so it enters no cache key.",
    )


class BudgetTrainConfig(Section):
    """Training settings of the strong-on-budget baseline that may differ from the student's, so
    that each can get its own tuning (by the same rule)."""

    epochs: float | None = Field(
        None,
        gt=0,
        description="Passes over weak_train for the strong-on-budget baseline; None: the student's "
        "(strong.epochs, or strong.frozen.epochs with mode=frozen).",
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the strong-on-budget baseline; None: the student's (strong.lr, or "
        "strong.frozen.lr with mode=frozen).",
    )


class DeepSpeedConfig(Section):
    stage: Literal[0, 1, 2, 3] = Field(
        2, description="ZeRO stage: 0 off, 1 optimizer states, 2 + gradients, 3 + parameters."
    )
    offload_optimizer: bool = Field(
        False, description="Keep optimizer states in CPU memory (DeepSpeedCPUAdam; its op compiles on first use)."
    )
    offload_params: bool = Field(False, description="ZeRO-3 only: keep parameters in CPU memory between uses.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Older spelling of strong.precision (kept working; the two may not disagree)."
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimiser step.")
    grad_clip: float = Field(1.0, ge=0, description="Gradient-norm clipping (0: off).")
    config_file: str | None = Field(
        None,
        description="An explicit DeepSpeed JSON config; it replaces the generated one (batch "
        "sizes must agree with strong.batch_size, strong.processes and grad_accum).",
    )


class DistributedConfig(Section):
    processes: int = Field(1, ge=1, description="Ranks per node that train the strong model together.")
    launcher: Literal["torchrun", "deepspeed"] = Field(
        "torchrun",
        description="How ranks are started: torchrun (one node) or the DeepSpeed launcher (needed for a hostfile).",
    )
    hostfile: str | None = Field(
        None,
        description="DeepSpeed hostfile (`host slots=N` lines) for multi-node training; "
        "implies launcher=deepspeed. The project folder must be on a filesystem every host shares.",
    )
    master_port: int = Field(29500, ge=1024, le=65535, description="Rendezvous port of rank 0.")
    checkpoint_every: int = Field(
        0,
        ge=0,
        description="Save an engine checkpoint every N optimiser steps (0: at each evaluation); "
        "a killed run resumes from the last one.",
    )
    timeout_s: float = Field(
        172800.0,
        gt=0,
        description="Wall-clock limit of one distributed training launch (seconds, default 2 days): "
        "past it every local rank is stopped and the step fails (a rerun resumes from the last "
        "checkpoint). Does not enter any cache key.",
    )


def weights_only(strong: dict[str, Any]) -> dict[str, Any]:
    """A strong config's dump without the settings that cannot change the weights (a launch's
    time limit; the budget baseline's own overrides, which only the budget run applies, to its
    own copy; the truncations that share an embedding pass), so changing them reuses the cached
    model."""
    strong = {k: v for k, v in strong.items() if k != "budget"}
    if "frozen" in strong:  # which other truncations share the embedding pass changes no model
        strong["frozen"] = {k: v for k, v in strong["frozen"].items() if k != "embed_layers"}
    if "distributed" not in strong:
        return strong
    return {**strong, "distributed": {k: v for k, v in strong["distributed"].items() if k != "timeout_s"}}


def budget_strong(strong: StrongConfig) -> StrongConfig:
    """The strong config the budget baseline trains with: `strong.budget`'s epochs and lr in
    place of the ones the active mode reads (`strong.*` when fine-tuning, `strong.frozen.*` on
    frozen features), everything else the student's. Applying it twice changes nothing."""
    override = {k: v for k, v in strong.budget.model_dump().items() if v is not None}
    if not override:
        return strong
    if strong.mode == "frozen":
        return strong.model_copy(update={"frozen": strong.frozen.model_copy(update=override)})
    return strong.model_copy(update=override)


class StrongConfig(EncoderTrainConfig):
    backend: Literal["auto", "torch", "deepspeed"] = Field(
        "auto",
        description="torch: the plain PyTorch loop in-process; deepspeed: the DeepSpeed engine "
        "in `distributed.processes` ranks (gloo on CPU, NCCL on GPU); auto: deepspeed when a CUDA "
        "device is present.",
    )
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig, description="Settings of backend=deepspeed.")
    distributed: DistributedConfig = Field(default_factory=DistributedConfig, description="Ranks and launcher.")
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Override every dropout probability of the encoder and head (None keeps the pretrained model's).",
    )
    mode: Literal["finetune", "frozen"] = Field(
        "finetune",
        description="finetune: train every weight; frozen: embed once (cached) and "
        "train only the head (fast; see `frozen`).",
    )
    frozen: FrozenConfig = Field(default_factory=FrozenConfig, description="Settings of mode=frozen.")
    loss: Literal["xent", "logconf", "product", "squared"] = Field(
        "xent",
        description="Student loss: xent (soft cross-entropy), logconf (auxiliary "
        "confidence), product (product-of-experts target), squared (least squares of the head's "
        "outputs to the soft labels; the outputs are probabilities, projected onto the simplex, "
        "not logits: with mode=frozen, a linear head fit by least squares, Charikar et al.'s "
        "convex setting). The ceiling and the budget baseline always train with xent.",
    )
    budget: BudgetTrainConfig = Field(
        default_factory=BudgetTrainConfig,
        description="Overrides of epochs and lr for the strong-on-budget baseline alone (default: the student's).",
    )
    logconf: LogConfConfig = Field(default_factory=LogConfConfig, description="Settings of loss=logconf.")
    product: ProductConfig = Field(default_factory=ProductConfig, description="Settings of loss=product.")
    early_stopping: Literal["weak_val", "oracle", "none"] = Field(
        "weak_val",
        description="weak_val: best checkpoint on weak-labeled val (honest); "
        "oracle: on ground-truth val (an ablation, flagged in the results); none: last step.",
    )

    @model_validator(mode="after")
    def _one_precision(self) -> StrongConfig:
        legacy = self.deepspeed.precision
        if legacy != "fp32" and self.precision == "fp32":
            object.__setattr__(self, "precision", legacy)  # not an assignment: no re-validation loop
        elif legacy != "fp32" and legacy != self.precision:
            raise ValueError(f"strong.precision={self.precision} but strong.deepspeed.precision={legacy}")
        return self


class SelectionConfig(Section):
    candidates: dict[str, WeakConfig] = Field(
        default_factory=dict,
        description="Named weak supervisors to choose from by predicted strong "
        "error (Err_w - misfit); empty: use `weak` as is.",
    )
    student_mode: Literal["frozen", "finetune"] = Field(
        "frozen", description="How the probe student is fit to each candidate's labels."
    )
    folds: int = Field(5, ge=2, description="Cross-validation folds for each candidate's Err_w.")


class RegisterConfig(Section):
    enabled: bool = Field(True, description="Log the student as a pyfunc and register a version.")
    model_name: ModelName = Field("w2s-strong", description="Registered model name: letters, digits, '.', '_' and '-'.")
    alias: AliasName = Field("challenger", description="Alias set on the new version: letters, digits, '_', '-'.")


class PromotionConfig(Section):
    metric: Literal["acc", "auroc"] = Field(
        "acc", description="Score compared between challenger and champion on the evaluation set."
    )
    min_margin: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="The challenger must beat the champion's score by at least "
        "this much (0: not worse; a negative value tolerates a small loss).",
    )
    floors: dict[str, float] = Field(
        default_factory=lambda: {"pgr": 0.0},
        description="Hard floors on the challenger run's "
        "metrics, e.g. {pgr: 0.2}: the metric must be defined (PGR is null when ceiling - weak "
        "is under eval.min_gap) "
        "and at least the value. Checked even when there is no champion yet.",
    )
    eval_set: str | None = Field(
        None,
        description="Fixed labelled evaluation file (CSV / TSV / JSONL / Parquet, columns "
        "named by data.text_column / data.label_column), relative to the project. Unset: the "
        "test split of the challenger's run, recomputed from the project's data.",
    )
    champion_alias: AliasName = Field("champion", description="Alias the gate moves: letters, digits, '_', '-'.")
    min_eval_rows: int = Field(
        100,
        ge=1,
        description="The gate scores only rows neither model trained on (rows of the champion's "
        "or the challenger's weak_train, transfer or val are removed, matched by text); with "
        "fewer rows left than this, it rejects the challenger rather than compare on noise.",
    )

    @model_validator(mode="after")
    def _known_floors(self) -> PromotionConfig:
        from w2s.core.metric_schema import floor_names

        unknown = sorted(set(self.floors) - set(floor_names()))
        if unknown:
            raise ValueError(
                f"promotion.floors names unknown metric '{unknown[0]}' (one of {', '.join(floor_names())})"
            )
        return self


class EvalConfig(Section):
    min_gap: float | Literal["auto"] = Field(
        "auto",
        description="PGR (and each PGR variant) is null, 'gap too small', when ceiling - weak is "
        "below this. auto: 3 standard errors of a test accuracy, 3 * sqrt(p (1 - p) / n) at p = "
        "the mean of weak and ceiling accuracy and n test rows (about 3 points at n = 1000); a "
        "number: that gap in accuracy (AUROC for the AUROC variants); 0: only ceiling > weak.",
    )

    @model_validator(mode="after")
    def _gap_in_range(self) -> EvalConfig:
        if self.min_gap != "auto" and not 0.0 <= self.min_gap < 1.0:
            raise ValueError(f"eval.min_gap must be 'auto' or in [0, 1), got {self.min_gap}")
        return self


class TrackingConfig(Section):
    experiment: str = Field("w2s", min_length=1, description="MLflow experiment name.")


class BaseConfig(Section):
    """The sections every run reads; `w2s.config.Config` adds `method` and the methods' sections,
    composed from the method registry."""

    seed: int = Field(0, ge=0, description="Seed for splits, weak and strong training.")
    data: DataConfig = Field(
        default_factory=DataConfig,
        description="Where the examples come from: a bundled corpus, a file or an HF dataset.",
    )
    split: SplitConfig = Field(
        default_factory=SplitConfig,
        description="Split sizes: the weak budget, the transfer set, weakly labeled val, test (and held-out groups).",
    )
    weak: WeakConfig = Field(default_factory=WeakConfig, description="The weak supervisor.")
    strong: StrongConfig = Field(
        default_factory=StrongConfig, description="The strong model: the student, the ceiling and the budget baseline."
    )
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig,
        description="Choosing among several weak supervisors by predicted strong error.",
    )
    registry: RegisterConfig = Field(
        default_factory=RegisterConfig, description="Registering the student in the MLflow model registry."
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking.")
    promotion: PromotionConfig = Field(
        default_factory=PromotionConfig,
        description="The promotion gate of `w2s retrain` and `w2s promote`: when the champion alias may move.",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation: when PGR is reported.")

    @model_validator(mode="after")
    def _registration_cannot_bypass_the_gate(self) -> BaseConfig:
        # A run that registered straight onto the gate's alias would ship every scheduled model
        # ungated: no previous champion recorded, nothing to roll back to, and gc free to drop
        # the old champion.
        if self.registry.alias == self.promotion.champion_alias:
            raise ValueError(
                f"registry.alias '{self.registry.alias}' is promotion.champion_alias, which only the "
                "promotion gate may move: register under another alias (default challenger) and "
                "promote with `w2s promote` or `w2s retrain`"
            )
        return self

    @model_validator(mode="after")
    def _backend_fits_mode(self) -> BaseConfig:
        if self.strong.backend == "deepspeed" and self.strong.mode == "frozen":
            raise ValueError("strong.backend=deepspeed trains the whole model: it needs strong.mode=finetune")
        return self

    def section(self, name: str) -> Any:
        """A top-level section by name (a method's own section included)."""
        return getattr(self, name)

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named top-level sections (all of them when none are named)."""
        dumped = self.model_dump(mode="json")
        picked = {k: dumped[k] for k in (sections or tuple(dumped))}
        return stable_hash(picked)


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()

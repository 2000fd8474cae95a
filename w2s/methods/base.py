"""The method protocol: everything that differs between W2S methods, behind one set of hooks.

A method is a `Method` subclass in its own module under `w2s/methods/` (or in a plugin package,
registered under the `w2s.methods` entry-point group). It supplies:

- `Settings`: its config section (a pydantic model), stored under the method's name;
- `reads`: other config sections its labels depend on (they enter its cache keys);
- `check`: config rules it needs (e.g. a text perturbation needs fine-tuning);
- `weak_models`: any extra weak supervisors it trains (checked before a run starts);
- `supervise`: the labels the student trains on: the weak labels as they are, a refinement of
  them (`RefiningMethod.refine`), or a chain of intermediate students;
- `objective`, `student_loss`, `student_aux`: how the student trains, when it is not just the
  configured `strong.loss` on the labels (learned ensemble weights, a consistency term);
- `metrics`: numbers of its own for `metrics.json`.

The pipeline drives these hooks and never asks which method it is running. Methods reach the
pipeline only through the `Env` they are handed, so they import nothing from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel

from w2s.core.config import BaseConfig, EncoderTrainConfig, WeakConfig
from w2s.core.data.split import encode_labels
from w2s.core.metric_schema import Metric
from w2s.core.refs import LabelsRef, ModelRef, split_part

if TYPE_CHECKING:
    from w2s.core.losses import Loss

# The auxiliary training term a method may add: (model, batch indices, step_frac) -> loss tensor.
Aux = Callable[[Any, np.ndarray, float], Any]


@dataclass(frozen=True)
class Supervision:
    """What a method hands the student: the labels it trains on, plus what produced them."""

    labels: LabelsRef
    refined: ModelRef | None = None  # a refined supervisor, evaluated next to the weak one
    chain: tuple[tuple[ModelRef, LabelsRef], ...] = ()  # intermediate students (bootstrapping)


class Env(Protocol):
    """What the pipeline offers a method while it builds the student's labels."""

    weak: ModelRef
    weak_labels: LabelsRef

    @property
    def cfg(self) -> BaseConfig:
        """The run's config (the full one: methods read their own sections from it)."""
        ...

    def refine(self, method: RefiningMethod) -> ModelRef:
        """Run (or reuse, by content hash) `method.refine` on blind splits."""
        ...

    def train_student(self, cfg: BaseConfig, labels: LabelsRef, folds: int = 1) -> ModelRef:
        """Train (or reuse) a student of `cfg.strong` on `labels`; it predicts every split. With
        `folds` > 1, cross-fitted: one student per fold of transfer, each row predicted by the
        student that did not train on it (val and test by their mean)."""
        ...

    def publish(self, supervisor: ModelRef, name: str) -> LabelsRef:
        """Write a supervisor's predictions as a label file; gate, version and check it."""
        ...


def assert_blind(splits: pd.DataFrame) -> None:
    """Refuse splits that carry any label outside weak_train."""
    leaked = splits.loc[splits["split"] != "weak_train", "label"].notna()
    if leaked.any():
        raise ValueError(f"refinement was given {int(leaked.sum())} ground-truth label(s) outside weak_train")


@dataclass
class RefineInputs:
    """What a refinement may read: blind splits (no label outside weak_train), the weak
    supervisor's probabilities on the rows to label, and a few services."""

    splits: pd.DataFrame
    label_names: list[str]
    cfg: BaseConfig
    weak_probs: np.ndarray  # on `targets`, aligned by id
    targets: pd.DataFrame  # transfer, val, test (and ood_test) rows, in prediction order
    embed_ids: Callable[[pd.Series], np.ndarray]  # strong-model embeddings of rows, by id
    # train another weak supervisor (config, optional (fraction, seed) of the budget, and
    # optionally only the budget's rows of some groups); returns its probabilities on `targets`
    # and its cache entry
    train_weak: Callable[..., tuple[np.ndarray, ModelRef]]
    # pooled embeddings of any `id, text` rows by any transformer config (cached by content): the
    # strong model's of free texts such as label descriptions, a weak encoder's of split rows
    embed_rows_with: Callable[[EncoderTrainConfig, pd.DataFrame], np.ndarray] | None = None

    def __post_init__(self) -> None:
        assert_blind(self.splits)

    def embed_rows(self, ecfg: EncoderTrainConfig, rows: pd.DataFrame) -> np.ndarray:
        """Embeddings of `rows` (`id`, `text`) by the transformer of `ecfg`, in their order."""
        if self.embed_rows_with is None:
            raise ValueError("this refinement was given no embedding service for other models or texts")
        return self.embed_rows_with(ecfg, rows[["id", "text"]])

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Strong-model embeddings of free texts (not split rows), e.g. label descriptions."""
        rows = pd.DataFrame({"id": [f"free-text-{i}" for i in range(len(texts))], "text": texts})
        return self.embed_rows(self.cfg.strong, rows)

    def strong_is_decoder(self) -> bool:
        """Whether the strong model is a causal LM (read from its config alone, no weights)."""
        from w2s.core.models.arch import is_decoder
        from w2s.core.models.resolve import check_model

        return is_decoder(check_model(self.cfg.strong.model))

    @property
    def k(self) -> int:
        return len(self.label_names)

    @cached_property
    def budget(self) -> pd.DataFrame:
        return split_part(self.splits, "weak_train").reset_index(drop=True)

    @cached_property
    def y_budget(self) -> np.ndarray:
        return encode_labels(self.budget["label"], self.label_names)

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        return self.embed_ids(rows["id"])

    def weak_oof(self, n_folds: int) -> np.ndarray:
        """Out-of-fold weak probabilities on the budget (cross-fitted)."""
        from w2s.core.cross_fit import weak_oof_probs

        return weak_oof_probs(
            self.budget["text"].tolist(), self.y_budget, self.k, self.cfg.weak, self.cfg.seed, n_folds
        )

    def is_transfer(self) -> np.ndarray:
        return (self.targets["split"] == "transfer").to_numpy()


@dataclass(frozen=True)
class Refined:
    """A refinement's output: labels for every target row, what it did, and (for a weak
    ensemble) each member's probabilities, which the student then reads too."""

    probs: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    members: dict[str, np.ndarray] | None = None


class Method:
    """One W2S method. Subclasses set `name`, `summary` and, if they have knobs, `Settings`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `method`'s help text
    Settings: ClassVar[type[BaseModel] | None] = None
    reads: ClassVar[tuple[str, ...]] = ()  # other sections that determine its labels
    member_labels: ClassVar[bool] = False  # the student reads every member's probabilities
    declared_metrics: ClassVar[tuple[Metric, ...]] = ()  # what `metrics` may report

    def __init__(self, cfg: BaseConfig) -> None:
        self.cfg = cfg

    @property
    def settings(self) -> Any:
        """This method's own config section."""
        return self.cfg.section(self.name)

    def sections(self) -> tuple[str, ...]:
        """The config sections that determine this method's labels (its own first)."""
        return ((self.name,) if self.Settings is not None else ()) + self.reads

    def label_spec(self) -> dict[str, Any]:
        """The method's part of the key of anything built from its labels."""
        dumped = self.cfg.model_dump(mode="json")
        return {"method": self.name, **{s: dumped[s] for s in self.sections()}}

    @classmethod
    def check(cls, cfg: BaseConfig) -> None:
        """Refuse a config this method cannot run (raise ValueError with the reason)."""

    def weak_models(self) -> list[WeakConfig]:
        """Weak supervisors it trains besides `cfg.weak` (their models are checked up front)."""
        return []

    def supervise(self, env: Env) -> Supervision:
        """The labels the student trains on; by default the weak labels as they are."""
        return Supervision(env.weak_labels)

    def objective(self) -> dict[str, Any]:
        """Settings that change how the student trains, not only what its labels are (they
        enter the student's cache key)."""
        return {}

    def student_loss(self, targets: np.ndarray) -> Loss | None:
        """A loss replacing the configured `strong.loss` (None: keep it)."""
        return None

    def student_aux(self, tokenizer: Any, texts: list[str], targets: np.ndarray) -> Aux | None:
        """An auxiliary term added to the student's loss (None: none)."""
        return None

    def metrics(self, supervision: Supervision, student_info: dict[str, Any]) -> dict[str, float]:
        """Method-specific numbers for metrics.json, each one of `declared_metrics`."""
        return {}


class RefiningMethod(Method):
    """A method that turns the weak supervisor's predictions into new labels before the student
    trains; the result is cached like a weak model and published like weak labels."""

    def refine(self, inp: RefineInputs) -> Refined:
        raise NotImplementedError

    def supervise(self, env: Env) -> Supervision:
        ref = env.refine(self)
        return Supervision(env.publish(ref, f"{ref.key[:16]}-{self.name}"), refined=ref)

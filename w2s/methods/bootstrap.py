"""Bootstrapping (Burns et al. 2023): weak -> intermediate(s) -> strong.

Each intermediate is the strong architecture truncated to fewer layers, trained on the previous
stage's labels; its predictions on transfer and val become the next stage's labels (same schema,
same GX gate, versioned like the weak labels). The final student then trains on the last
intermediate's labels.

An intermediate that labels the rows it was trained on mostly hands back its own training
labels. By default each stage is cross-fitted instead: `cross_fit_folds` intermediates, each
trained without one fold of transfer, label that fold out of sample (Burns et al. relabel
in-sample; `cross_fit_folds: 1` does that).
"""

from __future__ import annotations

from pydantic import Field

from w2s.core.config import BaseConfig, Section
from w2s.methods.base import Env, Method, Supervision


class BootstrapConfig(Section):
    intermediate_layers: list[int] = Field(
        [2],
        min_length=1,
        description="Layer counts of the intermediate students, weakest first "
        "(each is the strong model truncated to that many blocks).",
    )
    cross_fit_folds: int = Field(
        2,
        ge=1,
        le=10,
        description="Folds of transfer per stage: each intermediate labels only rows it did not "
        "train on (1: one intermediate labels its own training rows, in-sample).",
    )


def stage_config(cfg: BaseConfig, layers: int) -> BaseConfig:
    """The config of an intermediate: the strong settings with `layers` transformer blocks."""
    return cfg.model_copy(update={"strong": cfg.strong.model_copy(update={"num_layers": layers})})


class Bootstrap(Method):
    name = "bootstrap"
    summary = "the student learns through a chain of truncated intermediate students"
    Settings = BootstrapConfig

    def supervise(self, env: Env) -> Supervision:
        current, chain = env.weak_labels, []
        for layers in self.settings.intermediate_layers:
            ref = env.train_student(stage_config(self.cfg, layers), current, self.settings.cross_fit_folds)
            current = env.publish(ref, f"{ref.key[:16]}-intermediate-{layers}l")
            chain.append((ref, current))
        return Supervision(current, chain=tuple(chain))


METHOD = Bootstrap

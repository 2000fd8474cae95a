"""Perturbation consistency (MLX, reduced): the student should not change its mind when tokens
irrelevant to the label are removed.

Which tokens are irrelevant is `w2s.core.perturbation`'s lexicon heuristic. The regulariser
adds `weight * CE(f(x~), target)` for the perturbed copy `x~`; the flip rate (how often the
prediction changes under the perturbation) is reported for every student.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from w2s.core.config import BaseConfig, Section
from w2s.core.perturbation import perturb_text
from w2s.methods.base import Aux, Method


class PerturbConfig(Section):
    weight: float = Field(
        0.5,
        ge=0,
        description="method=perturb: weight of CE(f(x~), target), x~ being the text with "
        "its irrelevant tokens dropped (MLX, reduced).",
    )
    drop_frac: float = Field(
        1.0, gt=0, le=1, description="Fraction of the irrelevant tokens dropped in each perturbed copy."
    )


class Perturb(Method):
    name = "perturb"
    summary = "naive labels plus perturbation consistency on texts with irrelevant tokens dropped (MLX)"
    Settings = PerturbConfig

    @classmethod
    def check(cls, cfg: BaseConfig) -> None:
        if cfg.strong.mode == "frozen":
            raise ValueError("method=perturb perturbs the text, so it needs strong.mode=finetune")

    def objective(self) -> dict[str, Any]:
        return {"method": self.name, self.name: self.settings.model_dump(mode="json")}

    def student_aux(self, tokenizer: Any, texts: list[str], targets: np.ndarray) -> Aux:
        """`weight * CE(f(x~), target)` over the perturbed copies of `texts`."""
        import torch

        from w2s.core.losses import soft_ce
        from w2s.core.models.batching import encode, model_device

        p = self.settings
        enc = encode(tokenizer, [perturb_text(t, p.drop_frac) for t in texts], self.cfg.strong.max_length)
        target_t = torch.as_tensor(targets, dtype=torch.float32)

        def aux(model: Any, idx: np.ndarray, step_frac: float) -> Any:
            del step_frac
            device = model_device(model)
            logits = model(*(t.to(device) for t in enc.batch(idx)))
            return p.weight * soft_ce(logits, target_t[idx].to(device))

        return aux


METHOD = Perturb

"""Perturbation consistency (MLX, reduced): the student should not change its mind when tokens
irrelevant to the label are removed.

The bundled corpora carry no token-level explanations, so relevance comes from a lexicon
heuristic: English stop words and tokens without letters or digits are irrelevant. The
regulariser adds `weight * CE(f(x~), target)` for the perturbed copy `x~`; the flip rate (how
often the prediction changes under the perturbation) is reported for every student.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
from pydantic import Field

from w2s.core.config import BaseConfig, Section
from w2s.methods.base import Aux, Method

_WORD = re.compile(r"[A-Za-z0-9]")


def irrelevant(token: str) -> bool:
    """True for a stop word or a token without any letter or digit."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    core = token.strip(".,;:!?\"'()[]{}").lower()
    return not _WORD.search(token) or core in ENGLISH_STOP_WORDS


def perturb_text(text: str, drop_frac: float = 1.0) -> str:
    """The text with irrelevant tokens dropped (each with probability `drop_frac`, decided by a
    hash of the text so the same text always gets the same copy). Never returns an empty text."""
    tokens = text.split()
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    rng = np.random.default_rng(seed)
    kept = [t for t in tokens if not (irrelevant(t) and rng.random() < drop_frac)]
    return " ".join(kept) if kept else text


def flip_rate(clean_probs: np.ndarray, perturbed_probs: np.ndarray) -> float:
    """Fraction of rows whose predicted class changes under the perturbation."""
    return float(np.mean(clean_probs.argmax(1) != perturbed_probs.argmax(1)))


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

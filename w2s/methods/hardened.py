"""A control, not a method: naive training on sharpened weak labels.

Self-labels, corrector outputs and confidence masks are all sharper than a soft weak supervisor's
probabilities, so part of what such a method gains may be sharpening alone. Training the student
on the weak labels made hard (argmax, `temperature: 0`) or sharpened (p^(1/T), renormalised)
measures that part: a method has to beat this control, not only naive, to claim more than it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from w2s.core.config import Section
from w2s.methods.base import Refined, RefineInputs, RefiningMethod


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """One-hot argmax labels at temperature 0, else p^(1/T) renormalised (T < 1 sharpens)."""
    if temperature == 0:
        return np.eye(probs.shape[1])[probs.argmax(1)]
    logp = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logp -= logp.max(1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(1, keepdims=True)


class HardenedConfig(Section):
    temperature: float = Field(
        0.0,
        ge=0,
        description="0: one-hot argmax weak labels; T > 0: the weak probabilities to the power 1/T, "
        "renormalised (T < 1 sharpens, 1 leaves them as they are).",
    )


class Hardened(RefiningMethod):
    name = "hardened"
    summary = "control: naive training on the weak labels made hard (argmax) or sharpened (temperature)"
    Settings = HardenedConfig

    def refine(self, inp: RefineInputs) -> Refined:
        probs = sharpen(inp.weak_probs, self.settings.temperature)
        transfer = inp.is_transfer()
        info = {
            # the argmax never moves; how much sharper the labels became is the mean confidence
            "confidence_before": float(inp.weak_probs[transfer].max(1).mean()),
            "confidence_after": float(probs[transfer].max(1).mean()),
        }
        return Refined(probs, info)


METHOD = Hardened

"""Contrastive weak labels (ConG, reduced to classification).

With a weak model before (`pre`) and after (`post`) part of its training, score each class by
`s = logit_post - (1 - alpha) logit_pre`, keep only the plausible classes
(`p_post >= plausibility * max p_post`), and use `softmax(s)` over them: what the training added,
amplified. `alpha = 1` returns the post labels (on the plausible classes). Log-probabilities serve
as logits: a per-row constant shift does not change the softmax.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from w2s.core.config import Section
from w2s.methods.base import Refined, RefineInputs, RefiningMethod


def contrastive_labels(p_post: np.ndarray, p_pre: np.ndarray, alpha: float, plausibility: float = 0.1) -> np.ndarray:
    """Contrastive soft labels (rows sum to 1; implausible classes get probability 0)."""
    if p_post.shape != p_pre.shape:
        raise ValueError(f"post {p_post.shape} and pre {p_pre.shape} predictions differ in shape")
    log_post = np.log(np.clip(p_post, 1e-12, 1.0))
    log_pre = np.log(np.clip(p_pre, 1e-12, 1.0))
    score = log_post - (1.0 - alpha) * log_pre
    plausible = p_post >= plausibility * p_post.max(axis=1, keepdims=True)
    score = np.where(plausible, score, -np.inf)
    score -= score.max(axis=1, keepdims=True)
    out = np.exp(score)
    return out / out.sum(axis=1, keepdims=True)


class ContrastiveConfig(Section):
    alpha: float = Field(
        0.5, ge=0, le=1, description="Score = logit_post - (1 - alpha) logit_pre; alpha=1 gives the post labels."
    )
    pre_frac: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="The `pre` weak model is the same supervisor trained on this "
        "fraction of the weak budget (an earlier, less fine-tuned state).",
    )
    plausibility: float = Field(0.1, gt=0, le=1, description="Keep classes with p_post >= this * max p_post.")


class Contrastive(RefiningMethod):
    name = "contrastive"
    summary = "ConG-style labels: post - (1 - alpha) pre, from a weak model before and after training"
    Settings = ContrastiveConfig

    def refine(self, inp: RefineInputs) -> Refined:
        c = self.settings
        pre_probs, pre = inp.train_weak(self.cfg.weak, (c.pre_frac, self.cfg.seed))
        probs = contrastive_labels(inp.weak_probs, pre_probs, c.alpha, c.plausibility)
        info = {"pre_cache_key": pre.key, "pre_train_examples": pre.info.get("train_examples"), "alpha": c.alpha}
        return Refined(probs, info)


METHOD = Contrastive

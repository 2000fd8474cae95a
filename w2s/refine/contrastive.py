"""Contrastive weak labels (ConG, reduced to classification).

With a weak model before (`pre`) and after (`post`) part of its training, score each class by
`s = logit_post - (1 - alpha) logit_pre`, keep only the plausible classes
(`p_post >= plausibility * max p_post`), and use `softmax(s)` over them: what the training added,
amplified. `alpha = 1` returns the post labels (on the plausible classes). Log-probabilities serve
as logits: a per-row constant shift does not change the softmax.
"""

from __future__ import annotations

import numpy as np


def contrastive_labels(p_post: np.ndarray, p_pre: np.ndarray, alpha: float,
                       plausibility: float = 0.1) -> np.ndarray:
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

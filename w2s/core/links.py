"""How a model's outputs become class probabilities: its output link, named by the loss that
trained it (`link` on a loss class of `w2s.core.losses`; softmax unless it declares another).

`softmax` turns logits into probabilities (the cross-entropy losses). `simplex` is for the
squared loss, whose outputs are the predicted probability vectors themselves: the Euclidean
projection onto the simplex makes them probabilities. The pipeline stores the link's name with a
trained model and applies it by name, without asking which loss trained the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def softmax(outputs: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, renormalised so each row sums to 1."""
    z = outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def simplex_projection(outputs: np.ndarray) -> np.ndarray:
    """The Euclidean projection of each row onto the probability simplex (Duchi et al. 2008):
    `max(v - theta, 0)` with `theta` chosen so the row sums to 1. It keeps the argmax, and it
    moves no row further from any point of the simplex (a one-hot label, or a soft weak label),
    so a squared error or a squared misfit measured after it is at most the one before it."""
    v = outputs.astype(np.float64)
    k = v.shape[1]
    u = -np.sort(-v, axis=1)
    cssv = np.cumsum(u, axis=1) - 1.0
    ind = np.arange(1, k + 1)
    rho = (u - cssv / ind > 0).sum(axis=1)  # >= 1: the largest entry always qualifies
    theta = cssv[np.arange(len(v)), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


# How a model's outputs become probabilities, by the name a loss declares as its `link`.
LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"softmax": softmax, "simplex": simplex_projection}


def link_of(loss: Any) -> str:
    """The link of a loss (softmax unless it declares another, e.g. a method's own loss)."""
    return str(getattr(loss, "link", "softmax"))


def probabilities(outputs: np.ndarray, link: str = "softmax") -> np.ndarray:
    """Class probabilities from a model's outputs under `link` (a name of `LINKS`)."""
    if link not in LINKS:
        raise KeyError(f"unknown output link '{link}' (known: {', '.join(LINKS)})")
    return LINKS[link](outputs)

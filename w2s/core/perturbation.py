"""Perturbing a text by dropping the tokens irrelevant to its label: the copy the perturbation
consistency method trains on, and the flip-rate diagnostic every student reports.

The bundled corpora carry no token-level explanations, so relevance comes from a lexicon
heuristic: English stop words and tokens without letters or digits are irrelevant.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

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

"""Weak-labeling / embedding throughput: the library's length-sorted batches against batches
taken in input order, padded to each batch's longest text (so the only difference is the order)
or to the maximum length (`padding="max_length"`, common in tutorials)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.common import padded_tokens, timed
from bench.training import MODEL, tweets


class _Embedder(torch.nn.Module):
    def __init__(self, classifier: torch.nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier.embed(input_ids, mask)


@torch.no_grad()
def input_order(model: torch.nn.Module, enc, batch_size: int, width: int | None = None) -> np.ndarray:
    """The obvious loop: consecutive rows, padded to the batch's longest row (or to `width`, as
    `padding="max_length"` does)."""
    from w2s.core.models.batching import collate

    model.eval()
    out = []
    for s in range(0, len(enc), batch_size):
        rows = enc.ids[s : s + batch_size]
        if width is not None:
            rows = [*rows, [enc.pad_id] * width]  # a dummy full-width row sets the padded width
        ids, mask = collate(rows, enc.pad_id)
        if width is not None:
            ids, mask = ids[:-1], mask[:-1]
        out.append(model(ids, mask).numpy())
    return np.concatenate(out)


def measure(n: int = 2000, batch_size: int = 128, max_len: int = 64, repeats: int = 3) -> dict[str, Any]:
    """Texts/s of the mean-pooled strong-encoder pass both ways (median of `repeats`); the two
    outputs are checked equal, so the speed-up changes nothing downstream."""
    from w2s.core.config import EncoderTrainConfig
    from w2s.core.models.batching import encode, predict_logits
    from w2s.core.models.classifier import build_classifier

    texts, _, _ = tweets(n)
    tokenizer, classifier = build_classifier(EncoderTrainConfig(model=MODEL), 2, seed=0)
    model = _Embedder(classifier)
    enc = encode(tokenizer, texts, max_len)
    sorted_ = timed(lambda: predict_logits(model, enc, batch_size), repeats)
    naive = timed(lambda: input_order(model, enc, batch_size), repeats)
    fixed = timed(lambda: input_order(model, enc, batch_size, max_len), repeats)
    max_diff = max(float(np.abs(sorted_.value - other.value).max()) for other in (naive, fixed))
    lengths = enc.lengths
    chunks = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    order = np.argsort(lengths, kind="stable")
    padded_naive = padded_tokens(lengths, chunks)
    padded_sorted = padded_tokens(lengths, [order[c] for c in chunks])
    return {
        "texts": n,
        "batch_size": batch_size,
        "max_length": max_len,
        "model": MODEL,
        "repeats": repeats,
        "length_sorted": {"seconds": sorted_.seconds, "texts_per_s": n / sorted_.median},
        "input_order": {"seconds": naive.seconds, "texts_per_s": n / naive.median},
        "input_order_max_length": {"seconds": fixed.seconds, "texts_per_s": n / fixed.median},
        "padded_tokens": {
            "length_sorted": int(padded_sorted),
            "input_order": int(padded_naive),
            "input_order_max_length": n * max_len,
            "real": int(lengths.sum()),
        },
        "max_abs_diff": max_diff,
    }

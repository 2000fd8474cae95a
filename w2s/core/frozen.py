"""Frozen-feature mode: the encoder embeds every text once (cached by content hash), then only
the classification head trains on the cached embeddings, the way the reference vision
experiments train linear probes. The trained head sits inside the full `TextClassifier`, so the
saved model still takes raw text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from w2s.core.cache import ArtifactCache, cache_key
from w2s.core.config import EncoderTrainConfig
from w2s.core.data.sources import table_md5
from w2s.core.models.batching import encode

EMBED_VERSION = "embed-2"


@dataclass
class Embedded:
    """Cached embeddings as a batchable dataset (every row has the same cost)."""

    vectors: torch.Tensor

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def lengths(self) -> np.ndarray:
        return np.ones(len(self.vectors), dtype=np.int64)

    def batch(self, idx: Sequence[int]) -> tuple[torch.Tensor]:
        return (self.vectors[torch.as_tensor(np.asarray(idx), dtype=torch.long)],)


class HeadOnly(nn.Module):
    """The classifier's dropout + head applied to precomputed embeddings (shares the modules)."""

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.dropout: nn.Module = classifier.dropout
        self.head: nn.Module = classifier.head

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(vectors))


def embeddings(
    classifier: Any,
    tokenizer: Any,
    rows: pd.DataFrame,
    scfg: EncoderTrainConfig,
    cache: ArtifactCache,
) -> torch.Tensor:
    """Pooled transformer embeddings of `rows.text`, in the order of `rows`, computed once per
    content hash of the set of rows. The key and the stored vectors follow the rows sorted by id:
    every seed orders the same rows differently, and they all share one embedding pass."""
    order = np.argsort(rows["id"].to_numpy(), kind="stable")
    rows = rows.iloc[order].reset_index(drop=True)
    back = np.argsort(order, kind="stable")  # sorted position of each input row
    spec = {
        "version": EMBED_VERSION,
        "model": scfg.model,
        "num_layers": scfg.num_layers,
        "max_length": scfg.max_length,
        "pooling": classifier.pooling,
        "precision": scfg.precision,
        "texts": table_md5(rows, ["id", "text"]),
    }
    key = cache_key("embeddings", spec)
    hit = cache.lookup("embeddings", key)
    if hit is None:
        from w2s.core.models.batching import predict_logits

        class _Embed(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.classifier = classifier  # registered, so eval() turns its dropout off

            def forward(self, input_ids, mask):
                return self.classifier.embed(input_ids, mask)

        enc = encode(tokenizer, rows["text"].tolist(), scfg.max_length)
        vectors = predict_logits(_Embed(), enc, scfg.eval_batch_size, desc="embedding")
        with cache.build("embeddings", key, spec) as folder:
            np.save(folder / "vectors.npy", vectors.astype(np.float32))
        hit = cache.path("embeddings", key)
    return torch.from_numpy(np.load(hit / "vectors.npy")[back])

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


def _sorted_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows sorted by id (how embeddings are keyed and stored), and each input row's place."""
    order = np.argsort(rows["id"].to_numpy(), kind="stable")
    return rows.iloc[order].reset_index(drop=True), np.argsort(order, kind="stable")


def embedding_spec(sorted_rows: pd.DataFrame, scfg: EncoderTrainConfig, pooling: str, num_layers: int | None) -> dict:
    """What determines the embeddings of these (id-sorted) rows: the cache entry's spec."""
    return {
        "version": EMBED_VERSION,
        "model": scfg.model,
        "num_layers": num_layers,
        "max_length": scfg.max_length,
        "pooling": pooling,
        "precision": scfg.precision,
        "texts": table_md5(sorted_rows, ["id", "text"]),
    }


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
    rows, back = _sorted_rows(rows)
    spec = embedding_spec(rows, scfg, classifier.pooling, scfg.num_layers)
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


def cache_truncations(
    rows: pd.DataFrame, scfg: EncoderTrainConfig, layers: list[int], cache: ArtifactCache
) -> list[int]:
    """Embed `rows` once with the deepest of `layers` blocks of `scfg.model` (an encoder) and
    store the pooled output after each of `layers` blocks as the cache entry the model truncated
    to that many blocks would write, for the depths not cached yet; returns those depths."""
    from w2s.core.models.arch import is_decoder
    from w2s.core.models.batching import predict_logits
    from w2s.core.models.classifier import build_classifier, resolve_pooling
    from w2s.core.models.resolve import check_model

    rows, _ = _sorted_rows(rows)
    pooling = resolve_pooling(scfg.pooling, is_decoder(check_model(scfg.model)))  # from the config alone
    specs = {n: embedding_spec(rows, scfg, pooling, n) for n in sorted(set(layers))}
    missing = [n for n, spec in specs.items() if cache.lookup("embeddings", cache_key("embeddings", spec)) is None]
    if not missing:
        return []
    tokenizer, classifier = build_classifier(scfg.model_copy(update={"num_layers": max(missing)}), 2, seed=0)

    class _EmbedLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = classifier  # registered, so eval() turns its dropout off

        def forward(self, input_ids, mask):
            return self.classifier.embed_layers(input_ids, mask, missing)

    enc = encode(tokenizer, rows["text"].tolist(), scfg.max_length)
    stacked = predict_logits(_EmbedLayers(), enc, scfg.eval_batch_size, desc=f"embedding {len(missing)} depths")
    for n, vectors in zip(missing, np.split(stacked, len(missing), axis=1), strict=True):
        key = cache_key("embeddings", specs[n])
        with cache.build("embeddings", key, specs[n]) as folder:
            np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
    return missing

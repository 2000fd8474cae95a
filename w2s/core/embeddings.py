"""Strong-model embeddings of every row of the splits, computed once per content hash and
shared by every method that reads them (graph smoothing, P(IK), the corrector, frozen mode)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from w2s.core.cache import ArtifactCache
from w2s.core.config import EncoderTrainConfig


def split_embeddings(splits: pd.DataFrame, scfg: EncoderTrainConfig, cache: ArtifactCache) -> pd.DataFrame:
    """Pooled embeddings of the pretrained strong model, one row per split row, indexed
    by id (look rows up with `take`)."""
    from w2s.core.frozen import cache_truncations, embeddings
    from w2s.core.models.classifier import build_classifier

    rows = splits[["id", "text"]].reset_index(drop=True)
    shared = getattr(getattr(scfg, "frozen", None), "embed_layers", None) or []
    if shared and scfg.num_layers is not None:
        # one pass for every truncation a size grid asks for (frozen.embed_layers)
        cache_truncations(rows, scfg, [scfg.num_layers, *shared], cache)
    tokenizer, model = build_classifier(scfg, 2, seed=0)  # the head is unused
    vectors = embeddings(model, tokenizer, rows, scfg, cache).numpy()
    return pd.DataFrame({"vector": list(vectors)}, index=pd.Index(rows["id"], name="id"))


def take(table: pd.DataFrame, ids: pd.Series) -> np.ndarray:
    """The embeddings of `ids`, in that order; an unknown id is an error, never a silent gap."""
    missing = pd.Index(ids).difference(table.index)
    if len(missing):
        raise KeyError(f"{len(missing)} id(s) have no embedding, e.g. {missing[0]!r}")
    return np.stack(table.loc[list(ids), "vector"].to_numpy())

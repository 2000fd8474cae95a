"""Strong-model embeddings are computed once per set of rows, whatever order a seed puts them in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from w2s.core.cache import ArtifactCache
from w2s.core.config import EncoderTrainConfig
from w2s.core.frozen import embeddings

from conftest import assert_truncations_share_one_pass


def test_every_order_of_the_same_rows_shares_one_embedding_pass(tmp_path, minilm_2layer):
    tokenizer, model = minilm_2layer
    cfg = EncoderTrainConfig(num_layers=2, max_length=16)
    cache = ArtifactCache(tmp_path / "cache")
    rows = pd.DataFrame(
        {"id": [f"r{i}" for i in range(12)], "text": [f"tweet number {i} about {i % 3}" for i in range(12)]}
    )
    first = embeddings(model, tokenizer, rows, cfg, cache).numpy()
    shuffled = rows.sample(frac=1.0, random_state=3).reset_index(drop=True)  # another seed's split order
    again = embeddings(model, tokenizer, shuffled, cfg, cache).numpy()
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 1, "one pass for both orders"
    by_id = dict(zip(rows["id"], first, strict=True))
    np.testing.assert_array_equal(again, np.stack([by_id[i] for i in shuffled["id"]]))
    assert not np.allclose(again, first), "returned in the order asked for, not the stored one"


def test_one_pass_embeds_every_truncation_of_minilm_exactly(tmp_path):
    assert_truncations_share_one_pass("minilm-l6", [1, 3, 6], tmp_path)

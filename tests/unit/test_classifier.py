import numpy as np
import torch

from w2s.core.config import EncoderTrainConfig
from w2s.core.models.batching import (
    collate,
    encode,
    length_grouped_batches,
    predict_logits,
)
from w2s.core.models.classifier import (
    build_classifier,
    load_classifier,
    mean_pool,
    save_classifier,
)


def test_mean_pool_ignores_padding_by_attention_mask():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 2.0]]))


def test_padding_does_not_change_predictions(minilm_2layer):
    tokenizer, model = minilm_2layer
    model.eval()
    enc = encode(tokenizer, ["short text", "a much longer text that needs more tokens than the other"], 32)
    alone = model(*collate([enc.ids[0]], enc.pad_id))
    padded = model(*collate(enc.ids, enc.pad_id))[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_truncation_is_counted(minilm_2layer):
    tokenizer, _ = minilm_2layer
    enc = encode(tokenizer, ["word " * 100, "short"], 16)
    assert enc.truncated == 1 and max(enc.lengths) == 16
    assert enc.ids[0][-1] == tokenizer.sep_token_id


def test_saved_classifier_reproduces_its_predictions(minilm_2layer, tmp_path):
    tokenizer, model = minilm_2layer
    with torch.no_grad():
        model.head.weight.normal_()  # a trained-looking head, not the init
    texts = ["the election is tomorrow", "make it great", "vote"]
    before = predict_logits(model, encode(tokenizer, texts, 32), 2)
    save_classifier(model, tokenizer, tmp_path / "m", {"num_labels": 2, "max_length": 32})
    loaded, tok2, meta = load_classifier(tmp_path / "m")
    after = predict_logits(loaded, encode(tok2, texts, meta["max_length"]), 2)
    np.testing.assert_array_equal(before, after)
    assert len(loaded.encoder.encoder.layer) == 2
    assert not list((tmp_path / "m").glob("*.bin")) and (tmp_path / "m" / "model.safetensors").is_file()


def test_length_grouped_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(3, 60, size=203)
    batches = length_grouped_batches(lengths, 16, np.random.default_rng(1), group=4)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(203))

    def spread(bs):
        return np.mean([lengths[b].max() - lengths[b].min() for b in bs])

    naive = np.array_split(np.random.default_rng(1).permutation(203), len(batches))
    assert spread(batches) < 0.5 * spread(naive), "batches should hold similar lengths"


def test_build_classifier_is_seeded():
    _, a = build_classifier(EncoderTrainConfig(num_layers=1), 3, seed=5)
    _, b = build_classifier(EncoderTrainConfig(num_layers=1), 3, seed=5)
    assert torch.equal(a.head.weight, b.head.weight)

import numpy as np
import pytest

from w2s.core.config import EncoderTrainConfig
from w2s.core.losses import xent
from w2s.core.models.batching import encode, predict_logits
from w2s.core.train import train, warmup_cosine


def test_warmup_then_cosine():
    f = warmup_cosine(total=100, warmup_frac=0.1)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5, abs=0.02)
    assert f(99) < 0.01


def test_training_learns_a_separable_task_and_keeps_the_best_checkpoint(minilm_2layer):
    tokenizer, model = minilm_2layer
    texts = [f"great wonderful movie {i}" for i in range(24)] + [f"awful terrible film {i}" for i in range(24)]
    y = np.array([1] * 24 + [0] * 24)
    enc = encode(tokenizer, texts, 16)
    cfg = EncoderTrainConfig(epochs=3, batch_size=8, lr=3e-4, evals_per_epoch=2)
    seen_scores = []

    def evaluate(m):
        acc = float(np.mean(predict_logits(m, enc, 16).argmax(1) == y))
        seen_scores.append(acc)
        return {"acc": acc}

    result = train(model, enc, np.eye(2, dtype=np.float32)[y], cfg, 0, xent, evaluate, "acc")
    assert result.steps == 18 and len(result.curve) == len(seen_scores)
    assert result.best_score == max(seen_scores) == 1.0
    final = float(np.mean(predict_logits(model, enc, 16).argmax(1) == y))
    assert final == result.best_score, "the best checkpoint is restored at the end"
    assert result.curve[-1]["train_loss"] < result.curve[0]["train_loss"]


def test_mismatched_targets_are_rejected(minilm_2layer):
    tokenizer, model = minilm_2layer
    enc = encode(tokenizer, ["a", "b"], 8)
    with pytest.raises(ValueError, match="2 encoded examples but 3 targets"):
        train(model, enc, np.ones((3, 2)) / 2, EncoderTrainConfig(), 0, xent)

"""Weak supervisors trained on the `weak_train` ground truth.

`tfidf`: TF-IDF + logistic regression. `encoder`: a (truncated) transformer classifier fine-tuned
with the shared training loop. Both return class probabilities over all K classes, also for
classes absent from their training data (probability 0 from a linear model that never saw them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from w2s.core.config import WeakConfig
from w2s.core.links import softmax
from w2s.core.models.batching import encode, predict_logits


def tfidf_vectorizer(cfg: WeakConfig):
    """The TF-IDF featuriser of the weak supervisor (unfitted): what the weak model reads."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        ngram_range=(1, cfg.tfidf.ngram_max), max_features=cfg.tfidf.max_features, sublinear_tf=True, min_df=1
    )


def train_tfidf(texts: list[str], y: np.ndarray, num_classes: int, cfg: WeakConfig, seed: int, out_dir: Path):
    """Fit TF-IDF + logistic regression; save it with joblib; return a predict_proba callable."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(tfidf_vectorizer(cfg), LogisticRegression(C=cfg.tfidf.C, max_iter=2000, random_state=seed))
    pipe.fit(texts, y)
    joblib.dump(pipe, out_dir / "tfidf.joblib")
    seen = pipe.classes_.astype(int)

    def predict(batch: list[str]) -> np.ndarray:
        full = np.zeros((len(batch), num_classes), dtype=np.float64)
        full[:, seen] = pipe.predict_proba(batch)
        return full

    return predict


def train_encoder(texts: list[str], y: np.ndarray, num_classes: int, cfg: WeakConfig, seed: int, out_dir: Path):
    """Fine-tune a small transformer on one-hot ground truth; save it; return a predictor."""
    from w2s.core.losses import xent
    from w2s.core.models.classifier import build_classifier, save_classifier
    from w2s.core.train import train

    ecfg = cfg.encoder
    tokenizer, model = build_classifier(ecfg, num_classes, seed)
    enc = encode(tokenizer, texts, ecfg.max_length)
    onehot = np.eye(num_classes, dtype=np.float32)[y]
    train(model, enc, onehot, ecfg, seed, xent, desc="weak encoder")
    save_classifier(
        model,
        tokenizer,
        out_dir / "encoder",
        {
            "num_labels": num_classes,
            "max_length": ecfg.max_length,
            "base_model": ecfg.model,
            "num_layers": ecfg.num_layers,
        },
    )

    def predict(batch: list[str]) -> np.ndarray:
        logits = predict_logits(
            model, encode(tokenizer, batch, ecfg.max_length), ecfg.eval_batch_size, desc="weak labeling"
        )
        return softmax(logits)

    return predict


WEAK_TRAINERS = {"tfidf": train_tfidf, "encoder": train_encoder}

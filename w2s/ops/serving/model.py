"""The pyfunc model class. Loaded from code (no pickled objects) with safetensors weights."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel


def as_texts(model_input: Any) -> list[str]:
    """Accept a list/array/Series of strings or a DataFrame with a `text` (or single) column."""
    if isinstance(model_input, pd.DataFrame):
        col = "text" if "text" in model_input.columns else model_input.columns[0]
        values = model_input[col].tolist()
    elif isinstance(model_input, pd.Series):
        values = model_input.tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if bad:
        raise TypeError(f"input {bad[0]} is {type(values[bad[0]]).__name__}, expected a string")
    return values


class TextClassifierModel(PythonModel):
    """Raw text in; a DataFrame of class probabilities (one column per label name) out."""

    # predict() carries no type hints on purpose: MLflow would derive a second, looser schema
    # from them; the explicit signature given at logging time is the contract.
    def load_context(self, context) -> None:
        from pathlib import Path

        from w2s.core.models.classifier import load_classifier
        from w2s.ops.digests import verify_served

        verify_served(Path(context.artifacts["model"]))  # before any file of it is read as a model
        self.model, self.tokenizer, self.meta = load_classifier(context.artifacts["model"])

    def predict(self, context, model_input, params=None):
        from w2s.core.models.batching import predict_texts

        texts = as_texts(model_input)
        if not texts:
            return pd.DataFrame(columns=self.meta["label_names"])
        probs = predict_texts(
            self.model, self.tokenizer, texts, self.meta["max_length"], link=self.meta.get("link", "softmax")
        )
        return pd.DataFrame(probs, columns=self.meta["label_names"])

"""Models-from-code entry point that MLflow executes when it loads the registered model."""

import mlflow

from w2s.ops.serving.model import TextClassifierModel

mlflow.models.set_model(TextClassifierModel())

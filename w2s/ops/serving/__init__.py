"""Serving: the MLflow pyfunc that takes raw text and returns class probabilities."""

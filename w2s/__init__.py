"""w2s: weak-to-strong generalization as a tested, orchestrated pipeline.

The library is importable without Prefect and without loading any heavy dependency: models,
MLflow, DVC and Great Expectations are imported inside the functions that use them.
"""

__version__ = "0.2.0"  # what CHANGELOG.md says a version means

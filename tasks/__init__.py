"""Prefect tasks: thin adapters that call `w2s`, log to MLflow, version with DVC, gate with GX."""

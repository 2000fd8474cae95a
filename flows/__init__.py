"""Prefect flows: compose the tasks into the pipeline (no ML logic here)."""

"""Data: bundled corpora, user sources, the canonical table and deterministic splits."""

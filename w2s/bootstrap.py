"""Bootstrapping (Burns et al. 2023): weak -> intermediate(s) -> strong.

Each intermediate is the strong architecture truncated to fewer layers, trained on the previous
stage's labels; its predictions on transfer and val become the next stage's labels (same schema,
same GX gate). The final student then trains on the last intermediate's labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w2s import steps
from w2s.cache import ArtifactCache
from w2s.config import Config
from w2s.refs import ModelRef, SplitsRef, TableRef
from w2s.strong import train_strong


def stage_config(cfg: Config, layers: int) -> Config:
    """The config of an intermediate: the strong settings with `layers` transformer blocks."""
    return cfg.model_copy(update={"strong": cfg.strong.model_copy(update={"num_layers": layers})})


def bootstrap_labels(splits: SplitsRef, cfg: Config, cache: ArtifactCache, table: TableRef,
                     labels: dict[str, Any], out_dir: Path) -> list[tuple[ModelRef, dict[str, Any]]]:
    """Run the chain; return each intermediate model with the label file it produced (the
    last one is what the final student trains on)."""
    current, chain = labels, []
    for layers in cfg.bootstrap.intermediate_layers:
        ref = train_strong(splits, stage_config(cfg, layers), cache, "w2s", current["path"], current["md5"])
        path = out_dir / f"{ref.key[:16]}-intermediate-{layers}l.parquet"
        current, _ = steps.make_weak_labels(splits, ref, table, path)
        chain.append((ref, current))
    return chain

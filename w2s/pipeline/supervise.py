"""The supervise step: the configured method builds the labels the student trains on.

The pipeline hands the method an `Env` (`PipelineEnv`): refine the weak labels (cached like a weak
model, on blind splits), train an intermediate student, publish a label file. Refinements see
the splits *blind*: labels outside weak_train are removed before a method runs, and
`RefineInputs` refuses anything else, so no transfer, val or test ground truth can leak in.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.cache import ArtifactCache, cache_key
from w2s.core.config import BaseConfig, EncoderTrainConfig, WeakConfig
from w2s.core.data.sources import table_md5
from w2s.core.data.split import without_transfer_truth
from w2s.core.refs import (
    PREDICT_SPLITS,
    TEACHERS_FILE,
    LabelsRef,
    ModelRef,
    SplitsRef,
    split_part,
)
from w2s.io import read_json, write_json
from w2s.methods import get as get_method
from w2s.methods.base import Refined, RefineInputs, RefiningMethod, Supervision
from w2s.pipeline import predictions, weak_model
from w2s.pipeline.cross_fit import train_cross_fitted
from w2s.pipeline.labels import write_predictions
from w2s.pipeline.publish import Publisher
from w2s.pipeline.strong import StudentRun, train_strong

REFINE_VERSION = "refine-2"


@dataclass
class PipelineEnv:
    """The pipeline's side of the method protocol (`w2s.methods.base.Env`)."""

    cfg: Config
    splits: SplitsRef
    weak: ModelRef
    weak_labels: LabelsRef
    cache: ArtifactCache
    publisher: Publisher

    def refine(self, method: RefiningMethod) -> ModelRef:
        return refine_supervisor(self.splits, self.weak, method, self.cache)

    def train_student(self, cfg: BaseConfig, labels: LabelsRef, folds: int = 1) -> ModelRef:
        full = cast(Config, cfg)  # a method hands back a copy of the run's (full) config
        if folds > 1:
            return train_cross_fitted(self.splits, full, labels, folds, self.cache)
        return train_strong(self.splits, StudentRun(full, labels), self.cache)

    def publish(self, supervisor: ModelRef, name: str) -> LabelsRef:
        return self.publisher(supervisor, name)


def supervise(env: PipelineEnv) -> Supervision:
    """The configured method's supervision of the student."""
    return get_method(env.cfg.method)(env.cfg).supervise(env)


def _probs_on(ref: ModelRef, targets: pd.DataFrame) -> np.ndarray:
    """A supervisor's probabilities on the target rows, aligned by id."""
    preds = pd.concat([predictions.predictions(ref, s) for s in PREDICT_SPLITS])
    aligned = preds.set_index("id").reindex(targets["id"])
    if aligned["probs"].isna().any():
        raise ValueError(f"{ref.kind} predictions lack some target ids")
    return np.stack(aligned["probs"].to_numpy())


def refine_supervisor(splits_ref: SplitsRef, weak: ModelRef, method: RefiningMethod, cache: ArtifactCache) -> ModelRef:
    """Run (or reuse, by content hash) a refinement; returns the refined supervisor's cache entry,
    shaped like a weak model's (`preds.parquet` + `info.json`)."""
    cfg = cast(Config, method.cfg)  # the run's full config, as the method was built with it
    splits = pd.read_parquet(splits_ref.path)
    scfg = cfg.strong
    spec = {
        "version": REFINE_VERSION,
        **method.label_spec(),
        "weak": weak.key,
        "weak_config": cfg.weak.model_dump(mode="json"),
        "seed": cfg.seed,
        "labels": splits_ref.label_names,
        "rows": table_md5(splits, ["id", "text", "split"]),
        "budget": table_md5(split_part(splits, "weak_train"), ["id", "label"]),
        "embed": {"model": scfg.model, "num_layers": scfg.num_layers, "max_length": scfg.max_length},
    }
    key = cache_key("refined", spec)
    hit = cache.lookup("refined", key)
    if hit is not None:
        return ModelRef("refined", str(hit), key, True, read_json(hit / "info.json"))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        blind_path = Path(tmp) / "splits-blind.parquet"
        blind = without_transfer_truth(splits)
        blind.to_parquet(blind_path, index=False)
        blind_ref = SplitsRef(str(blind_path), splits_ref.md5 + "-blind", splits_ref.label_names, splits_ref.counts)
        targets = blind[blind["split"].isin(PREDICT_SPLITS)].reset_index(drop=True)
        embedded: dict[str, pd.DataFrame] = {}

        def embed_ids(ids: pd.Series) -> np.ndarray:
            from w2s.core.embeddings import split_embeddings, take

            if "table" not in embedded:  # computed once, on first use, from the shared cache
                embedded["table"] = split_embeddings(blind, scfg, cache)
            return take(embedded["table"], ids)

        def train_weak(
            wcfg: WeakConfig, subset: tuple[float, int] | None, groups: tuple[str, ...] = ()
        ) -> tuple[np.ndarray, ModelRef]:
            wrun = cfg.model_copy(update={"weak": wcfg})
            ref = weak_model.train_weak(blind_ref, wrun, cache, subset=subset, groups=groups)
            return _probs_on(ref, targets), ref

        def embed_rows_with(ecfg: EncoderTrainConfig, rows: pd.DataFrame) -> np.ndarray:
            from w2s.core.embeddings import split_embeddings, take

            return take(split_embeddings(rows, ecfg, cache), rows["id"])

        inp = RefineInputs(
            blind,
            splits_ref.label_names,
            cfg,
            _probs_on(weak, targets),
            targets,
            embed_ids,
            train_weak,
            embed_rows_with,
        )
        out = method.refine(inp)
    info = _write_refined(cache, key, spec, method.name, inp, out, time.perf_counter() - start)
    return ModelRef("refined", str(cache.path("refined", key)), key, False, info)


def _write_refined(
    cache: ArtifactCache, key: str, spec: dict[str, Any], name: str, inp: RefineInputs, out: Refined, seconds: float
) -> dict[str, Any]:
    """Seal the refined supervisor's cache entry (predictions, member teachers, info); its info."""
    with cache.build("refined", key, spec) as folder:
        write_predictions(folder / "preds.parquet", inp.targets["id"], inp.targets["split"], out.probs)
        if out.members is not None:
            members = list(out.members.values())
            teachers = pd.DataFrame(
                {
                    "id": inp.targets["id"],
                    "split": inp.targets["split"],
                    "member_probs": [np.stack([m[i] for m in members]).tolist() for i in range(len(inp.targets))],
                }
            )
            teachers.to_parquet(folder / TEACHERS_FILE, index=False)
        moved = out.probs.argmax(1) != inp.weak_probs.argmax(1)
        info = {
            "kind": f"refined ({name})",
            "method": name,
            **out.info,
            "changed_frac_transfer": float(moved[inp.is_transfer()].mean()),
            "seconds": round(seconds, 2),
        }
        write_json(folder / "info.json", info)
    return info

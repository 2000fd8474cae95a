"""Refined supervisors: a label-refining method turns the weak model's predictions into new soft
labels for every predicted split (transfer, val, test, ood_test), stored as a content-addressed
cache entry shaped like a weak model's (`preds.parquet` + `info.json`). The weak-label file, its
GX gate, DVC versioning and the evaluation then treat it like any other supervisor.

Every method here sees the splits *blind*: labels outside weak_train are removed before it runs,
and `assert_blind` refuses anything else, so no transfer, val or test ground truth can leak in.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s import steps
from w2s.cache import ArtifactCache, cache_key
from w2s.config import Config
from w2s.data.sources import table_md5
from w2s.data.split import encode_labels
from w2s.io import read_json, write_json
from w2s.labels import write_predictions
from w2s.refs import PREDICT_SPLITS, TEACHERS_FILE, ModelRef, SplitsRef, split_part
from w2s.selection import without_transfer_truth

REFINE_VERSION = "refine-1"
REFINED_METHODS = ("confidence", "selective", "smooth", "corrector", "contrastive", "ensemble")


def assert_blind(splits: pd.DataFrame) -> None:
    """Refuse splits that carry any label outside weak_train."""
    leaked = splits.loc[splits["split"] != "weak_train", "label"].notna()
    if leaked.any():
        raise ValueError(f"refinement was given {int(leaked.sum())} ground-truth label(s) outside weak_train")


@dataclass
class RefineInputs:
    """What a refinement may read: blind splits, the weak supervisor and the caches."""

    splits: pd.DataFrame
    splits_ref: SplitsRef
    weak: ModelRef
    cfg: Config
    cache: ArtifactCache
    targets: pd.DataFrame = field(init=False)
    weak_probs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        assert_blind(self.splits)
        self.targets = self.splits[self.splits["split"].isin(PREDICT_SPLITS)].reset_index(drop=True)
        self.weak_probs = self.probs_of(self.weak)

    @property
    def k(self) -> int:
        return len(self.splits_ref.label_names)

    @cached_property
    def budget(self) -> pd.DataFrame:
        return split_part(self.splits, "weak_train").reset_index(drop=True)

    @cached_property
    def y_budget(self) -> np.ndarray:
        return encode_labels(self.budget["label"], self.splits_ref.label_names)

    @cached_property
    def _embeddings(self) -> pd.DataFrame:
        from w2s.refine.embed import split_embeddings

        return split_embeddings(self.splits, self.cfg.strong, self.cache)

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        from w2s.refine.embed import take

        return take(self._embeddings, rows["id"])

    def probs_of(self, ref: ModelRef) -> np.ndarray:
        """A supervisor's probabilities on the target rows, aligned by id."""
        preds = pd.concat([steps.predictions(ref, s) for s in PREDICT_SPLITS])
        by_id = preds.set_index("id")
        aligned = by_id.reindex(self.targets["id"])
        if aligned["probs"].isna().any():
            raise ValueError(f"{ref.kind} predictions lack some target ids")
        return np.stack(aligned["probs"].to_numpy())

    def weak_oof(self, n_folds: int) -> np.ndarray:
        """Out-of-fold weak probabilities on the budget (cross-fitted)."""
        from w2s.refine.crossfit import weak_oof_probs

        return weak_oof_probs(self.budget["text"].tolist(), self.y_budget, self.k, self.cfg.weak,
                              self.cfg.seed, n_folds)

    def is_transfer(self) -> np.ndarray:
        return (self.targets["split"] == "transfer").to_numpy()


Refined = tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray] | None]


def _smooth(inp: RefineInputs, probs: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    from w2s.refine.smoothing import smooth_labels

    c = inp.cfg.smooth
    return smooth_labels(inp.embed(inp.targets), probs, c.k, c.mu, c.max_iter, c.tol)


def refine_smooth(inp: RefineInputs) -> Refined:
    probs, info = _smooth(inp, inp.weak_probs)
    return probs, info, None


def _gated(inp: RefineInputs, gate: str) -> Refined:
    from w2s.refine.selective import selective_labels

    c = inp.cfg.selective
    base, info = inp.weak_probs, {}
    if c.smooth:
        base, smooth_info = _smooth(inp, inp.weak_probs)
        info.update({f"smooth_{k}": v for k, v in smooth_info.items()})
    result = selective_labels(inp.embed(inp.budget), inp.y_budget, inp.weak_oof(c.folds), inp.embed(inp.targets),
                              base, inp.k, gate, c.tau, c.folds, c.C, inp.cfg.seed)
    info.update(result.info)
    info["self_label_frac"] = float(result.gate[inp.is_transfer()].mean())
    return result.probs, info, None


def refine_selective(inp: RefineInputs) -> Refined:
    return _gated(inp, "pik")


def refine_confidence(inp: RefineInputs) -> Refined:
    return _gated(inp, "confidence")


def refine_corrector(inp: RefineInputs) -> Refined:
    from w2s.refine.corrector import correct, fit_corrector

    c = inp.cfg.corrector
    oof = inp.weak_oof(c.folds)
    model, losses = fit_corrector(inp.embed(inp.budget), oof, inp.y_budget, c, inp.cfg.seed)
    probs = correct(model, inp.embed(inp.targets), inp.weak_probs)
    info = {"steps": c.steps, "budget_loss_start": losses[0] if losses else None,
            "budget_loss_end": losses[-1] if losses else None,
            "weak_oof_acc": float(np.mean(oof.argmax(1) == inp.y_budget))}
    return probs, info, None


def refine_contrastive(inp: RefineInputs) -> Refined:
    from w2s.refine.contrastive import contrastive_labels

    c = inp.cfg.contrastive
    pre = steps.train_weak(inp.splits_ref, inp.cfg, inp.cache, subset=(c.pre_frac, inp.cfg.seed))
    probs = contrastive_labels(inp.weak_probs, inp.probs_of(pre), c.alpha, c.plausibility)
    info = {"pre_cache_key": pre.key, "pre_train_examples": pre.info.get("train_examples"), "alpha": c.alpha}
    return probs, info, None


def refine_ensemble(inp: RefineInputs) -> Refined:
    from w2s.refine.ensemble import initial_weights, mixture

    c = inp.cfg.ensemble
    members, refs = {}, {}
    for name, member in c.members.items():
        mcfg = inp.cfg.model_copy(update={"weak": member.weak})
        ref = steps.train_weak(inp.splits_ref, mcfg, inp.cache, subset=(member.subset_frac, member.subset_seed))
        members[name], refs[name] = inp.probs_of(ref), ref.key
    stacked = np.stack(list(members.values()), axis=1)  # N x M x K
    weights = initial_weights(stacked[inp.is_transfer()], c.init)
    info = {"members": list(members), "member_cache_keys": refs, "init_weights": weights.tolist(),
            "all_agree_frac": float(np.mean((stacked.argmax(-1) == stacked.argmax(-1)[:, :1]).all(1)))}
    return mixture(weights, stacked), info, members


REFINERS: dict[str, Callable[[RefineInputs], Refined]] = {
    "confidence": refine_confidence, "selective": refine_selective, "smooth": refine_smooth,
    "corrector": refine_corrector, "contrastive": refine_contrastive, "ensemble": refine_ensemble,
}


def method_settings(cfg: Config) -> dict[str, Any]:
    """The config sections that determine a method's output (its cache key)."""
    dumped = cfg.model_dump(mode="json")
    sections = {"confidence": ["selective"], "selective": ["selective", "smooth"], "smooth": ["smooth"],
                "corrector": ["corrector"], "contrastive": ["contrastive"],
                "ensemble": ["ensemble"]}[cfg.method]
    return {s: dumped[s] for s in sections}


def refine_supervisor(splits_ref: SplitsRef, weak: ModelRef, cfg: Config, cache: ArtifactCache) -> ModelRef:
    """Run (or reuse) the configured refinement; returns the refined supervisor's cache entry."""
    if cfg.method not in REFINERS:
        raise ValueError(f"method '{cfg.method}' does not refine weak labels")
    splits = pd.read_parquet(splits_ref.path)
    scfg = cfg.strong
    spec = {
        "version": REFINE_VERSION, "method": cfg.method, "settings": method_settings(cfg),
        "weak": weak.key, "weak_config": cfg.weak.model_dump(mode="json"), "seed": cfg.seed,
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
        without_transfer_truth(splits).to_parquet(blind_path, index=False)
        blind_ref = SplitsRef(str(blind_path), splits_ref.md5 + "-blind", splits_ref.label_names, splits_ref.counts)
        inp = RefineInputs(pd.read_parquet(blind_path), blind_ref, weak, cfg, cache)
        probs, info, members = REFINERS[cfg.method](inp)
    with cache.build("refined", key, spec) as folder:
        write_predictions(folder / "preds.parquet", inp.targets["id"], inp.targets["split"], probs)
        if members is not None:
            teachers = pd.DataFrame({"id": inp.targets["id"], "split": inp.targets["split"],
                                     "member_probs": [np.stack([m[i] for m in members.values()]).tolist()
                                                      for i in range(len(inp.targets))]})
            teachers.to_parquet(folder / TEACHERS_FILE, index=False)
        moved = probs.argmax(1) != inp.weak_probs.argmax(1)
        info = {"kind": f"refined ({cfg.method})", "method": cfg.method, **info,
                "changed_frac_transfer": float(moved[inp.is_transfer()].mean()),
                "seconds": round(time.perf_counter() - start, 2)}
        write_json(folder / "info.json", info)
    return ModelRef("refined", str(cache.path("refined", key)), key, False, info)

"""Every task of the standard suite, named by `data.name` and read from a local copy in its hub
schema (`data.hf_name=FOLDER`), runs the whole pipeline through the library runner. The student is
a tiny, randomly initialised causal LM: what is checked is that the task's rows go through every
step whole (pairs never straddle a split), not what a model learns from random weights. (sciq
through the CLI's Prefect flow, tracking, DVC and the registry: tests/e2e/test_lm_pipeline.py.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.core.data import suite
from w2s.pipeline.sequence import run_steps
from w2s.project import Project

from conftest import TINY_CONFIG
from suite_schemas import LAYOUT, save_task

SCALE = 8  # 8x the unit tests' tables: 320-670 rows a task, enough for the splits below
SPLIT = {"weak_train": 40, "transfer": 80, "val": 30, "test": 100}


def _params(task: str, hf_name: str, strong: Path) -> dict:
    return {
        **TINY_CONFIG,
        "data": {"name": task, "hf_name": hf_name},
        "split": SPLIT,
        "strong": {**TINY_CONFIG["strong"], "model": str(strong), "num_layers": None, "max_length": 64, "lr": 1e-3},
    }


@pytest.mark.parametrize("task", list(LAYOUT))
def test_every_task_runs_the_whole_sequence_from_a_local_copy(tmp_path, task, tiny_lms):
    layout = "disk" if list(LAYOUT).index(task) % 2 == 0 else "parquet"
    hf_name = save_task(task, tmp_path, layout, scale=SCALE)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_params(task, hf_name, tiny_lms["small"])))
    cfg = load_config(tmp_path / "params.yaml", [])
    out = tmp_path / "out"

    result = run_steps(cfg, Project(tmp_path), out, ArtifactCache(tmp_path / ".w2s" / "cache"))

    for key in ("weak_acc", "w2s_acc", "ceiling_acc", "strong_budget_acc"):
        assert 0.0 <= result.metrics[key] <= 1.0
    splits = pd.read_parquet(next(out.glob("splits.parquet")))
    assert set(splits["label"]) == {"0", "1"}
    counts = splits["split"].value_counts().to_dict()
    for name, n in SPLIT.items():
        assert n <= counts[name] <= n + 1, "paired splits round up to whole pairs"
    if suite.task(task).paired:
        per_pair = splits.groupby("pair")["split"].nunique()
        assert len(per_pair) == len(splits) // 2 and (per_pair == 1).all(), "a pair straddles two splits"
    else:
        assert splits["pair"].isna().all()

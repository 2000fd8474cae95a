"""The one pipeline sequence, checked statically: dvc.yaml's stages are the sequence's steps, in order, and
list every config section their steps read."""

from __future__ import annotations

from pathlib import Path

import yaml

from w2s.methods import registry
from w2s.pipeline.sequence import SEQUENCE

REPO = Path(__file__).resolve().parents[2]


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_is_the_sequence_and_lists_every_section_its_stages_read():
    from w2s.pipeline.dvc_stages import STAGES

    assert tuple(_stages()) == SEQUENCE == tuple(STAGES)
    for name, stage in _stages().items():
        assert stage["cmd"] == f"python -m w2s.pipeline.dvc_stages {name}"
    sections = {name for name, m in registry().items() if m.Settings is not None}
    params = {name: set(stage.get("params", [])) for name, stage in _stages().items()}
    for stage in ("supervise", "student", "evaluate"):  # a method's hooks run in these three
        assert {"method", *sections} <= params[stage], stage
    assert {"selection", "weak"} <= params["weak"] and "selection" in params["select"]
    assert {"seed", "strong"} <= params["ceiling"] and {"seed", "split"} <= params["split"]
    assert {"seed", "strong"} <= params["budget"]

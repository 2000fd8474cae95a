"""One step table: dvc.yaml is generated from it and the method registry (the committed file is
the generated one), every params section a stage lists is in the shipped params.yaml (else
`dvc repro` stops), and a step added to the table runs in the library runner, the Prefect flow
and as a DVC stage without touching anything else."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from w2s.pipeline import dvc_yaml, sequence

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_dvc_yaml_is_the_generated_one():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml.generate(), "run `python -m w2s.pipeline.dvc_yaml > dvc.yaml`"


def test_every_section_a_stage_lists_is_in_the_shipped_params_yaml():
    shipped = set(yaml.safe_load((REPO / "params.yaml").read_text()))
    stages = yaml.safe_load(dvc_yaml.generate())["stages"]
    assert [s.name for s in sequence.STEPS] == list(stages)
    listed = {p for stage in stages.values() for p in stage.get("params", [])}
    assert listed - shipped == set(), "dvc repro fails on a params section params.yaml lacks"


def test_a_stage_depends_on_what_changes_its_config():
    stages = yaml.safe_load(dvc_yaml.generate(code=False))["stages"]
    assert "outputs/select" in stages["weak"]["deps"] and "outputs/select" in stages["evaluate"]["deps"]
    assert stages["ingest"]["deps"] == ["data"], "no code paths outside this repository"
    methods = {"bootstrap", "corrector", "ensemble", "smooth", "method"}
    assert methods <= set(stages["supervise"]["params"]) and methods <= set(stages["student"]["params"])


def _toy(env, cfg, splits):
    """A toy step: counts the split rows and writes them beside the step's files."""
    counts = dict(splits.counts)
    (env.out_dir / "toy.json").write_text(json.dumps(counts))
    return {"toy_rows": sum(counts.values())}


TOY = sequence.Step("toy", _toy, ("split",), ("seed",), ("w2s/pipeline/sequence.py",), "toy-step")


def test_a_step_added_to_the_table_is_a_stage_of_the_generated_dvc_yaml():
    table = (*sequence.STEPS[:3], TOY, *sequence.STEPS[3:])
    stages = yaml.safe_load(dvc_yaml.generate(steps=table))["stages"]
    assert list(stages)[3] == "toy"
    assert stages["toy"] == {
        "cmd": "python -m w2s.pipeline.dvc_stages toy",
        "deps": ["outputs/split", "w2s/pipeline/sequence.py"],
        "params": ["seed"],
        "outs": ["outputs/toy"],
    }

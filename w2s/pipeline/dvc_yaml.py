"""`dvc.yaml`, generated from the step table (`w2s.pipeline.sequence.STEPS`) and the method
registry: one stage per step running `python -m w2s.pipeline.dvc_stages <step>`, depending on its
inputs' outputs (and, in this repository, on the code that makes it), listing every `params.yaml`
section it reads (a step that reads `method` reads every method's section too), with its output
folder, and the evaluate step's metrics and plots. The committed file is this function's output
(a test checks it); `w2s init` writes the same without the code dependencies, which a project
outside this repository does not have.

    python -m w2s.pipeline.dvc_yaml > dvc.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from w2s.analysis.dvc_views import CURVE_KINDS, METRICS_FILE, PLOTS_DIR, SWEEP_FILE, curve_file
from w2s.methods import all_methods
from w2s.pipeline.dvc_stages import OUT
from w2s.pipeline.sequence import STEPS, Step

HEADER = """\
# Generated from the pipeline's step table (w2s/pipeline/sequence.py) and the method registry by
# `python -m w2s.pipeline.dvc_yaml > dvc.yaml`; edit those, not this file. One stage per step, each
# running the same step function as the Prefect task of the same name and sharing its
# content-addressed model cache, so models trained by `w2s run` are reused here and vice versa.
"""

PLOTS = [
    {
        "Validation accuracy during training": {
            "template": "linear",
            "x": "step",
            "y": {
                f"{PLOTS_DIR}/{curve_file('w2s')}": ["val_gt_acc", "val_weak_acc"],
                **{f"{PLOTS_DIR}/{curve_file(k)}": "val_gt_acc" for k in CURVE_KINDS if k != "w2s"},
            },
            "y_label": "accuracy on val",
        }
    },
    {
        "Training loss": {
            "template": "linear",
            "x": "step",
            "y": {f"{PLOTS_DIR}/{curve_file(k)}": "train_loss" for k in CURVE_KINDS},
            "y_label": "mean training loss since the last evaluation",
        }
    },
    {
        "PGR of the last sweep": {
            "template": "bar_horizontal",
            "x": "pgr",
            "y": {f"{PLOTS_DIR}/{SWEEP_FILE}": "config"},
            "x_label": "PGR (accuracy)",
        }
    },
]


def params_of(step: Step) -> list[str]:
    """The params.yaml sections a stage lists: its own, with `method` expanded to every method's."""
    sections = list(step.params)
    if "method" in sections:
        sections += sorted(name for name, m in all_methods().items() if m.Settings is not None)
    return list(dict.fromkeys(sections))


def stage(step: Step, code: bool, steps: tuple[Step, ...]) -> dict[str, Any]:
    """One stage of dvc.yaml. Besides its inputs, a step depends on every earlier step that
    changes the config it runs with (weak-model selection)."""
    out: dict[str, Any] = {"cmd": f"python -m w2s.pipeline.dvc_stages {step.name}"}
    earlier = steps[: steps.index(step)]
    inputs = [*step.inputs, *(s.name for s in earlier if s.updates_config and s.name not in step.inputs)]
    deps = [*step.data, *(f"{OUT}/{name}" for name in inputs), *(step.code if code else ())]
    if deps:
        out["deps"] = deps
    if params := params_of(step):
        out["params"] = params
    out["outs"] = [f"{OUT}/{step.name}"]
    if step.views is not None:
        out["metrics"] = [{METRICS_FILE: {"cache": False}}]
        out["outs"] += [{f"{PLOTS_DIR}/{curve_file(k)}": {"cache": False}} for k in CURVE_KINDS]
    return out


def generate(code: bool = True, steps: tuple[Step, ...] | None = None) -> str:
    """dvc.yaml's text; `code`: list the code each stage depends on (this repository's layout)."""
    table = steps or STEPS
    body = {"stages": {s.name: stage(s, code, table) for s in table}, "plots": PLOTS}
    return HEADER + yaml.safe_dump(body, sort_keys=False, width=110)


def main() -> int:
    sys.stdout.write(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage entry point: `python -m w2s.pipeline.dvc_stages <step>` runs one step of
`w2s.pipeline.sequence.STEPS`, the same function the Prefect flow's task and the library runner
call, for `dvc repro` / `dvc exp run` (the stages of `dvc.yaml` are generated from the same table:
`w2s.pipeline.dvc_yaml`).

A stage reads `params.yaml`, loads its inputs' outputs from `outputs/<input>/`, runs the step and
saves its output in `outputs/<step>/` with paths relative to the project (a model's predictions are
copied there, so DVC tracks what later stages read). Expensive steps go through the same
content-addressed cache as the flow: a `dvc repro` after `w2s run` (or the reverse) reuses the
trained models. DVC versions the stage outputs itself, so label files are not `dvc add`-ed here.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from w2s.config import Config, load_config
from w2s.core.cache import ArtifactCache
from w2s.core.refs import TEACHERS_FILE, LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.errors import W2SError
from w2s.io import copy_file, read_json, write_json
from w2s.methods.base import Supervision
from w2s.ops import activity
from w2s.ops.validation import GateReport
from w2s.pipeline import sequence
from w2s.pipeline.weak_selection import Selection
from w2s.project import Project

OUT = Path("outputs")
REF = "ref.json"
# what a step's output can be, by the name its saved reference carries
REF_TYPES: dict[str, type] = {
    t.__name__: t for t in (TableRef, SplitsRef, ModelRef, LabelsRef, Supervision, Selection, GateReport)
}


class Stage:
    """The project, its params and the `outputs/` layout one stage works with."""

    def __init__(self, table: tuple[sequence.Step, ...] | None = None) -> None:
        self.project = Project.discover()
        self.root = self.project.root
        self.out = self.root / OUT
        self.table = table or sequence.STEPS
        params = self.project.params_file
        self.base_cfg = load_config(params if params.is_file() else None)
        self.cache = ArtifactCache(self.project.cache_dir)

    def cfg_for(self, step: sequence.Step) -> Config:
        """The config as `step` sees it: the base config after every earlier step that changes it
        (weak-model selection) applied its saved output."""
        cfg = self.base_cfg
        for earlier in self.table[: self.table.index(step)]:
            if earlier.updates_config and (out := self.load(earlier.name)) is not None:
                cfg = out.apply(cfg)
        return cfg

    # A saved reference names its type and holds its paths relative to the project root.
    def _rel(self, path: str) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def encode(self, value: Any, folder: Path) -> Any:
        if value is None or isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, GateReport):
            return {"type": "GateReport", "value": value.as_dict()}
        if isinstance(value, ModelRef):
            value = self._publish_model(value, folder)
        if is_dataclass(value) and not isinstance(value, type):
            data = {
                f.name: self.encode(getattr(value, f.name), folder / f.name)
                if is_dataclass(getattr(value, f.name))
                else getattr(value, f.name)
                for f in fields(value)
            }
            if isinstance(value, Supervision):
                data["chain"] = [[self.encode(m, folder / f"chain{i}"), self.encode(lab, folder)]
                                 for i, (m, lab) in enumerate(value.chain)]  # fmt: skip
            for key in ("path", "dir"):
                if isinstance(data.get(key), str):
                    data[key] = self._rel(data[key])
            return {"type": type(value).__name__, "value": data}
        return {"type": "dict", "value": value}

    def decode(self, data: Any) -> Any:
        if not isinstance(data, dict) or set(data) != {"type", "value"}:
            return data
        kind, value = data["type"], dict(data["value"]) if isinstance(data["value"], dict) else data["value"]
        if kind == "dict":
            return value
        if kind == "GateReport":
            return GateReport.from_dict(value)
        for key in ("path", "dir"):
            if isinstance(value.get(key), str):
                value[key] = str(self.root / value[key])
        if kind == "Supervision":
            chain = tuple((self.decode(m), self.decode(lab)) for m, lab in value["chain"])
            return Supervision(self.decode(value["labels"]), self.decode(value["refined"]), chain)
        return REF_TYPES[kind](**{k: self.decode(v) for k, v in value.items()})

    def _publish_model(self, ref: ModelRef, folder: Path) -> ModelRef:
        """A model's predictions and training record copied into `folder`, the reference pointing there."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("preds.parquet", "info.json", TEACHERS_FILE):
            if name != TEACHERS_FILE or (Path(ref.dir) / name).is_file():
                copy_file(Path(ref.dir) / name, folder / name)
        return replace(ref, dir=str(folder))

    def save(self, name: str, output: Any) -> None:
        folder = self.out / name
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / REF, {"output": self.encode(output, folder)})

    def load(self, name: str) -> Any:
        return self.decode(read_json(self.out / name / REF)["output"])

    def run(self, name: str) -> None:
        """Run step `name` on its inputs' saved outputs; save its output (and its views)."""
        step = sequence.step(name, self.table)
        folder = self.out / name
        folder.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg_for(step)
        inputs = {i: self.load(i) for i in step.inputs}
        env = sequence.StepEnv(self.project, folder, folder, self.cache, data_docs=True)
        output = step.run(env, cfg, *inputs.values()) if step.runs(cfg) else None
        self.save(name, output)
        if step.views is not None and output is not None:
            step.views(self.project, output, inputs)


def main(argv: list[str] | None = None, table: tuple[sequence.Step, ...] | None = None) -> int:
    steps = table or sequence.STEPS
    parser = argparse.ArgumentParser(
        prog="python -m w2s.pipeline.dvc_stages", description="Run one pipeline step for `dvc repro`."
    )
    parser.add_argument("step", choices=[s.name for s in steps])
    args = parser.parse_args(argv)
    try:
        stage = Stage(steps)
        with activity.working(stage.project):  # `w2s gc` waits until the stage is over
            stage.run(args.step)
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage entry points: `python -m w2s.pipeline.dvc_stages <stage>`, one per step of the
pipeline's sequence, each running the same `LibrarySteps` step as the Prefect task and the
library runner.

Each stage reads `params.yaml` (and the selection stage's choice of weak model), takes its inputs
from `outputs/` and writes its declared outputs there; expensive steps go through the same
content-addressed cache as the Prefect flow, so a `dvc repro` after `w2s run` (or the reverse)
reuses the trained models. DVC versions the stage outputs itself, so label files are not
`dvc add`-ed here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from w2s.analysis.dvc_views import curves, write_run_views
from w2s.config import Config, load_config
from w2s.core.cache import ArtifactCache
from w2s.core.refs import TEACHERS_FILE, LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.errors import W2SError
from w2s.io import copy_file, read_json, write_json
from w2s.methods.base import Supervision
from w2s.ops import activity
from w2s.pipeline.sequence import LibrarySteps
from w2s.pipeline.weak_selection import Selection
from w2s.project import Project

OUT = Path("outputs")


class Stage:
    """The project, config and file layout one stage works with."""

    def __init__(self) -> None:
        self.project = Project.discover()
        self.root = self.project.root
        self.out = self.root / OUT
        self.out.mkdir(exist_ok=True)
        params = self.project.params_file
        self.base_cfg = load_config(params if params.is_file() else None)
        self.cache = ArtifactCache(self.project.cache_dir)

    @property
    def cfg(self) -> Config:
        """The config after weak-model selection (the select stage's choice, when it ran)."""
        selection = self.out / "selection" / "selection.json"
        if selection.is_file():
            chosen = read_json(selection)
            if chosen["chosen"] is not None:
                return Selection(**chosen).apply(self.base_cfg)
        return self.base_cfg

    def steps(self, out_dir: Path, labels_dir: Path | None = None) -> LibrarySteps:
        # gate reports beside the stage's outputs, each with its GX Data Docs (data_docs/<gate>/)
        return LibrarySteps(self.project, out_dir, labels_dir or out_dir, self.cache, data_docs=True)

    # References are stored with paths relative to the project, so outputs stay portable.
    def save(self, name: str, data: dict[str, Any]) -> None:
        write_json(self.out / name, data)

    def rel(self, path: str) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def abs(self, path: str) -> str:
        return str(self.root / path)

    def table(self) -> TableRef:
        data = read_json(self.out / "table.json")
        return TableRef(**{**data, "path": self.abs(data["path"])})

    def splits(self) -> SplitsRef:
        data = read_json(self.out / "splits.json")
        return SplitsRef(**{**data, "path": self.abs(data["path"])})

    def save_labels(self, ref: LabelsRef) -> dict[str, Any]:
        return {**asdict(ref), "path": self.rel(ref.path)}

    def load_labels(self, data: dict[str, Any]) -> LabelsRef:
        return LabelsRef(**{**data, "path": self.abs(data["path"])})

    def publish_model(self, ref: ModelRef, name: str) -> dict[str, Any]:
        """Copy a cache entry's predictions and training info into outputs/<name>/; its reference
        (pointing there) is saved as outputs/<name>/ref.json and returned."""
        dest = self.out / name
        dest.mkdir(parents=True, exist_ok=True)
        for fname in ("preds.parquet", "info.json", TEACHERS_FILE):
            if fname != TEACHERS_FILE or (Path(ref.dir) / fname).is_file():
                copy_file(Path(ref.dir) / fname, dest / fname)
        data = {**asdict(replace(ref, dir=str(dest))), "dir": self.rel(str(dest))}
        write_json(dest / "ref.json", data)
        return data

    def load_model(self, data: dict[str, Any]) -> ModelRef:
        return ModelRef(**{**data, "dir": self.abs(data["dir"])})

    def model(self, name: str) -> ModelRef:
        return self.load_model(read_json(self.out / name / "ref.json"))

    def supervision(self) -> Supervision:
        data = read_json(self.out / "supervision" / "supervision.json")
        refined = self.load_model(data["refined"]) if data["refined"] else None
        chain = tuple((self.load_model(m), self.load_labels(lab)) for m, lab in data["chain"])
        return Supervision(self.load_labels(data["labels"]), refined, chain)


def stage_ingest(st: Stage) -> None:
    ref = st.steps(st.out).ingest(st.cfg)
    st.save("table.json", {**asdict(ref), "path": st.rel(ref.path)})


def stage_validate(st: Stage) -> None:
    st.steps(st.out).validate(st.cfg, st.table())  # writes outputs/gate_raw_table.json, data_docs/raw_table/


def stage_split(st: Stage) -> None:
    ref = st.steps(st.out).split(st.cfg, st.table())  # and outputs/gate_split_overlap.json, data_docs/split_overlap/
    st.save("splits.json", {**asdict(ref), "path": st.rel(ref.path)})


def stage_select(st: Stage) -> None:
    folder = st.out / "selection"
    folder.mkdir(exist_ok=True)
    selection = st.steps(folder).select(st.base_cfg, st.splits(), st.table())
    write_json(folder / "selection.json", asdict(selection) if selection else {"chosen": None, "candidates": []})


def stage_weak(st: Stage) -> None:
    st.publish_model(st.steps(st.out).weak(st.cfg, st.splits()), "weak")


def stage_weak_labels(st: Stage) -> None:
    folder = st.out / "weak_labels"
    ref = st.steps(st.out, folder).weak_labels(st.cfg, st.splits(), st.table(), st.model("weak"))
    write_json(folder / "ref.json", st.save_labels(ref))


def stage_supervise(st: Stage) -> None:
    folder = st.out / "supervision"
    labels = st.load_labels(read_json(st.out / "weak_labels" / "ref.json"))
    sup = st.steps(st.out, folder).supervise(st.cfg, st.splits(), st.table(), st.model("weak"), labels)
    refined = st.publish_model(sup.refined, "supervision/refined") if sup.refined else None
    chain = [[{**asdict(m), "dir": st.rel(m.dir)}, st.save_labels(lab)] for m, lab in sup.chain]
    write_json(folder / "supervision.json", {"labels": st.save_labels(sup.labels), "refined": refined, "chain": chain})


def stage_student(st: Stage) -> None:
    st.publish_model(st.steps(st.out).student(st.cfg, st.splits(), st.supervision()), "w2s")


def stage_ceiling(st: Stage) -> None:
    st.publish_model(st.steps(st.out).ceiling(st.cfg, st.splits()), "ceiling")


def stage_budget(st: Stage) -> None:
    st.publish_model(st.steps(st.out).budget(st.cfg, st.splits()), "budget")


def stage_evaluate(st: Stage) -> None:
    student, ceiling, budget = st.model("w2s"), st.model("ceiling"), st.model("budget")
    metrics = st.steps(st.out).evaluate(
        st.cfg, st.splits(), st.model("weak"), student, ceiling, budget, st.supervision()
    )
    write_run_views(st.root, metrics, curves(w2s=student, ceiling=ceiling, budget=budget))


STAGES: dict[str, Callable[[Stage], None]] = {
    "ingest": stage_ingest,
    "validate": stage_validate,
    "split": stage_split,
    "select": stage_select,
    "weak": stage_weak,
    "weak_labels": stage_weak_labels,
    "supervise": stage_supervise,
    "student": stage_student,
    "ceiling": stage_ceiling,
    "budget": stage_budget,
    "evaluate": stage_evaluate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m w2s.pipeline.dvc_stages", description="Run one pipeline stage for `dvc repro`."
    )
    parser.add_argument("stage", choices=list(STAGES))
    args = parser.parse_args(argv)
    try:
        stage = Stage()
        with activity.working(stage.project):  # `w2s gc` waits until the stage is over
            STAGES[args.stage](stage)
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one label-publishing step, for weak labels, refined labels and a bootstrap chain's alike:
build the label table from a supervisor's predictions (ids asserted against the splits), gate it
with GX *before* it is published, write it atomically with its sidecar, `dvc add` + `dvc push`
it, check that DVC recorded the md5 the file has, and hand the gate report to the caller's
recorder (MLflow artifacts in the flow, a JSON file and optionally GX Data Docs beside the labels
elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from w2s.core.refs import TEACHERS_FILE, LabelsRef, ModelRef, SplitsRef, TableRef
from w2s.io import write_json
from w2s.ops import versioning
from w2s.ops.data_docs import docs_folder, write_data_docs
from w2s.ops.validation import GateReport, validate_weak_labels
from w2s.pipeline.labels import (
    add_member_probs,
    build_weak_labels,
    read_predictions,
    write_weak_labels,
)
from w2s.project import Project

# Receives a gate's report (passed or failed) under the name its JSON should be kept as.
Recorder = Callable[[str, GateReport], None]


def record_beside(folder: Path, data_docs: bool = False) -> Recorder:
    """A recorder that writes each gate report as JSON into `folder` and, with `data_docs`, its
    GX Data Docs site into `folder`/data_docs/<gate>/."""

    def record(name: str, report: GateReport) -> None:
        write_json(folder / name, report.as_dict())
        if data_docs:
            write_data_docs(report, folder / docs_folder(name))

    return record


class LabelsVersionMismatch(RuntimeError):
    """DVC recorded a different md5 than the published file has."""


@dataclass(frozen=True)
class Publisher:
    """Publishes label files into `folder`; DVC-versions them when `project` is a DVC repository
    that owns the folder (the flow), and leaves that to the caller otherwise (the library runner
    keeps them in the run folder; `dvc repro` versions stage outputs itself)."""

    splits: SplitsRef
    table: TableRef
    folder: Path
    record: Recorder
    project: Project | None = None

    def __call__(self, supervisor: ModelRef, stem: str, gate: str | None = None) -> LabelsRef:
        """Publish `supervisor`'s transfer/val predictions as `<folder>/<stem>.parquet`; the gate
        report is recorded as `gate_<gate or stem>.json`."""
        path = self.folder / f"{stem}.parquet"
        artifact = f"gate_{gate or stem}.json"
        splits = pd.read_parquet(self.splits.path)
        preds_path = Path(supervisor.dir) / "preds.parquet"
        labels = build_weak_labels(splits, read_predictions(preds_path), where=str(preds_path))
        teachers = Path(supervisor.dir) / TEACHERS_FILE
        if teachers.is_file():  # a weak ensemble: the student also needs every member's labels
            labels = add_member_probs(labels, pd.read_parquet(teachers))
        report = validate_weak_labels(labels, len(self.splits.label_names))
        self.record(artifact, report)
        report.raise_if_failed()
        ref = LabelsRef(
            path=str(path),
            md5="",
            label_names=self.splits.label_names,
            supervisor={"kind": supervisor.info.get("kind", "intermediate student"), "cache_key": supervisor.key},
            data_md5=self.table.data_md5,
            splits_md5=self.splits.md5,
            counts={s: int((labels["split"] == s).sum()) for s in ("transfer", "val")},
            members=supervisor.info.get("members"),
        )
        ref = replace(ref, md5=write_weak_labels(labels, path, ref.sidecar()))
        if self.project is not None and versioning.is_dvc_repo(self.project):
            versioned = versioning.add_and_push(self.project, path)
            if versioned.md5 != ref.md5:
                raise LabelsVersionMismatch(
                    f"DVC recorded md5 {versioned.md5} for {path.name}, but the file hashes to {ref.md5}"
                )
            ref = replace(ref, dvc=versioned.__dict__)
        return ref

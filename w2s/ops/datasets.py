"""MLflow dataset inputs for the files a run reads: the raw data and each label file, with the DVC
md5 as the digest and the DVC file and remote as the source, so MLflow's Datasets view of a run
names the exact data versions that `dvc pull` brings back.

A file DVC does not track (a project that is not a DVC repository, a file edited since `dvc add`)
is logged with its own content md5 and a `local` source that says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from w2s.core.refs import LabelsRef, SplitsRef, TableRef
from w2s.ops.tracking import client
from w2s.project import Project

# MLflow's dataset context tag (what the run used the data for).
CONTEXT_TAG = "mlflow.data.context"
# MLflow stores a dataset digest in at most 36 characters: a DVC directory md5 ("<32 hex>.dir") fits.
DIGEST_CHARS = 36
# The split table's dataset name: the registered model's metrics name it as their evaluation data.
SPLITS_NAME = "splits"


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset input: its name, digest, where it lives, what the run used it for, a profile."""

    name: str
    digest: str
    source_type: str
    source: dict[str, Any]
    context: str
    profile: dict[str, Any]

    def entity(self) -> Any:
        """The MLflow `DatasetInput` for this record."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(
            name=self.name,
            digest=self.digest[:DIGEST_CHARS],
            source_type=self.source_type,
            source=json.dumps(self.source, sort_keys=True),
            profile=json.dumps(self.profile, sort_keys=True),
        )
        return DatasetInput(dataset, [InputTag(CONTEXT_TAG, self.context)])


def _dvc_source(project: Project, path: str, dvc_file: str, remote: str | None) -> dict[str, Any]:
    """Where DVC keeps a version: the tracked path, its .dvc file, the remote (default if unnamed)."""
    from w2s.ops.versioning import remotes

    default, urls = remotes(project)
    remote = remote or default
    return {"path": path, "dvc_file": dvc_file, "remote": remote, "remote_url": urls.get(remote or "")}


def raw_data(project: Project, table: TableRef, dvc_tags: dict[str, str]) -> DatasetRecord:
    """The data the run ingested, under its DVC version when every file read matches it."""
    profile = {"rows": table.rows, "classes": len(table.label_names), "table_md5": table.data_md5}
    name = str(table.source.get("location") or "data")
    if dvc_tags.get("data_in_dvc") == "yes":
        dvc_file = dvc_tags["data_dvc_file"]
        source = _dvc_source(project, dvc_file.removesuffix(".dvc"), dvc_file, None)
        source["files"] = dvc_tags.get("data_files", "").split(",")
        return DatasetRecord(name, dvc_tags["data_dvc_md5"], "dvc", source, "raw", profile)
    source = {"files": dvc_tags.get("data_files", ""), "not_in_dvc": dvc_tags.get("data_in_dvc", "")}
    return DatasetRecord(name, table.data_md5, "local", source, "raw", profile)


def splits(project: Project, ref: SplitsRef) -> DatasetRecord:
    """The split table (weak_train / transfer / val / test ...): the metrics' test rows come from it."""
    return DatasetRecord(
        SPLITS_NAME, ref.md5, "local", {"path": _relative(project, ref.path)}, "evaluation", {"counts": ref.counts}
    )


def _relative(project: Project, path: str) -> str:
    """`path` relative to the project when inside it (the record reads the same on any machine)."""
    try:
        return str(project.root.joinpath(path).resolve().relative_to(project.root.resolve()))
    except ValueError:
        return path


def label_file(project: Project, labels: LabelsRef, name: str, context: str) -> DatasetRecord:
    """A published label file (weak labels, or the labels a method built for the student)."""
    profile = {"rows": sum(labels.counts.values()), "counts": labels.counts, "supervisor": labels.supervisor}
    if labels.dvc:
        d = labels.dvc
        source = _dvc_source(project, d["path"], d["dvc_file"], d.get("remote"))
        return DatasetRecord(name, d["md5"], "dvc", source, context, profile)
    return DatasetRecord(name, labels.md5, "local", {"path": _relative(project, labels.path)}, context, profile)


def log_inputs(records: list[DatasetRecord], *run_ids: str) -> None:
    """Attach the records to each MLflow run (a stage's and its pipeline's) as dataset inputs."""
    for run_id in run_ids:
        client().log_inputs(run_id, datasets=[r.entity() for r in records])

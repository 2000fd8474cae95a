"""Log a validation gate's report to the MLflow run of the stage that ran it: the JSON report and
GX's Data Docs of the same results beside it, whether the gate passed or failed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from w2s.ops.data_docs import docs_folder, write_data_docs
from w2s.ops.tracking import RunLog, client
from w2s.ops.validation import GateReport
from w2s.pipeline.publish import Recorder


def record_to(run: RunLog) -> Recorder:
    """A recorder that logs each gate report to `run` as `<name>` (JSON) and its Data Docs site
    under `data_docs/<gate>/` (index.html, a page per validation result and per suite)."""

    def record(name: str, report: GateReport) -> None:
        run.dict(report.as_dict(), name)
        with tempfile.TemporaryDirectory(prefix="w2s-data-docs-") as tmp:
            site = Path(tmp) / "site"  # a folder of its own: the site replaces whatever is there
            if write_data_docs(report, site) is None:
                return
            client().log_artifacts(run.run_id, str(site), docs_folder(name))  # one call for the whole site

    return record

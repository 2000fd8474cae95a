"""Log a validation gate's report to the MLflow run of the stage that ran it: the JSON report and
GX's Data Docs of the same results beside it, whether the gate passed or failed.

Docs are keyed by the content of the results (`data_docs.<gate>` tag): a gate that finds exactly
what an earlier run of the experiment found (an unchanged retrain) tags its run with that run's
id (`data_docs.<gate>.in_run`) instead of logging the same pages again."""

from __future__ import annotations

import tempfile
from pathlib import Path

from w2s.ops.data_docs import docs_folder, results_key, write_data_docs
from w2s.ops.tracking import RunLog, client, experiment_of
from w2s.ops.validation import GateReport
from w2s.pipeline.publish import Recorder


def record_to(run: RunLog) -> Recorder:
    """A recorder that logs each gate report to `run` as `<name>` (JSON) and its Data Docs site
    under `data_docs/<gate>/` (index.html, a page per validation result and per suite)."""

    def record(name: str, report: GateReport) -> None:
        run.dict(report.as_dict(), name)
        key = results_key(report)
        if key is None:
            return
        tag = docs_folder(name).replace("/", ".")  # data_docs.<gate>
        earlier = client().search_runs(
            [experiment_of(run.run_id)],
            f"tags.`{tag}` = '{key}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if earlier:
            run.tags({f"{tag}.in_run": earlier[0].info.run_id})  # only runs holding pages carry the key
            return
        with tempfile.TemporaryDirectory(prefix="w2s-data-docs-") as tmp:
            site = Path(tmp) / "site"  # a folder of its own: the site replaces whatever is there
            if write_data_docs(report, site) is None:
                return
            client().log_artifacts(run.run_id, str(site), docs_folder(name))  # one call for the whole site
        run.tags({tag: key})

    return record

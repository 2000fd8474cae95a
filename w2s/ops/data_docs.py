"""GX Data Docs of one gate: its validation results rendered by Great Expectations' own site
builder (an index page, a page per validation result and per expectation suite) as static HTML.

GX is imported inside `write_data_docs` (its import costs seconds). The site is built by an
ephemeral context whose stores live in memory; only the HTML is written, into the folder given.
Its pages are rendered by GX's views with one compiled-template cache per process
(`w2s.ops.data_docs_views`).
"""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from w2s.ops.validation import GateReport, ephemeral_context

DOCS_ROOT = "data_docs"
SITE = "w2s"


def docs_folder(artifact: str) -> str:
    """The folder, relative to where the gate's JSON report `artifact` (`gate_<name>.json`) is
    kept, that holds its Data Docs: `data_docs/<name>`."""
    return str(PurePosixPath(DOCS_ROOT, Path(artifact).stem.removeprefix("gate_")))


# Keys of GX's result records that differ between two validations of the same data (random ids,
# run metadata, rendering) and so stay out of `results_key`.
_VOLATILE = {"id", "meta", "rendered_content", "notes"}


def _stable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def results_key(report: GateReport) -> str | None:
    """A content hash of what the gate found (every expectation, its outcome and observed
    values), the same for two validations of the same data; None when it ran no GX suite."""
    import hashlib
    import json

    if not report.results:
        return None
    found = [[_stable(r.to_json_dict()) for r in kept.result.results] for kept in report.results]
    text = json.dumps([report.name, found], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def write_data_docs(report: GateReport, folder: Path) -> Path | None:
    """Render `report`'s GX validation results as a Data Docs site in `folder` (replacing what is
    there); return the site's index.html, or None when the gate ran no GX suite."""
    if not report.results:
        return None
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    shutil.rmtree(folder, ignore_errors=True)  # a page left from an earlier build would be listed
    context = ephemeral_context()
    context.add_data_docs_site(
        SITE,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": _view("IndexPageView")},
            "site_section_builders": {
                section: {"view": _view("PageView")} for section in ("expectations", "validations", "profiling")
            },
        },
    )
    run_id = RunIdentifier(run_name=report.name, run_time=datetime.now(UTC))
    suites: set[str] = set()
    for kept in report.results:
        # a copy: the page header reads the run and the data asset from meta, which a batch's
        # validation leaves without them
        result = copy.deepcopy(kept.result)
        result.meta["run_id"] = run_id
        asset = result.meta.get("active_batch_definition", {}).get("data_asset_name", result.suite_name)
        result.meta.setdefault("batch_spec", {})["data_asset_name"] = asset
        if result.suite_name not in suites:  # every batch of a table has the same suite
            suites.add(result.suite_name)
            configs = [_noted(r.expectation_config) for r in result.results]
            context.suites.add(gx.ExpectationSuite(result.suite_name, configs))
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(result.suite_name), run_id, kept.batch)
        context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=[SITE])
    # The pages take their styles inline and from CDNs; GX's static/ (4 MB of fonts and images)
    # serves them a favicon only, not worth logging with every gate.
    shutil.rmtree(folder / "static", ignore_errors=True)
    return folder / "index.html"


def _view(name: str) -> dict[str, str]:
    """A site builder's view config naming one of our views (GX's, compiling templates once)."""
    return {"module_name": "w2s.ops.data_docs_views", "class_name": name}


def _noted(config: Any) -> Any:
    """A copy of an expectation's configuration whose note, shown on the suite's page, is its GX
    type: GX renders an expectation as a sentence, and the type is what the JSON report names."""
    noted = copy.deepcopy(config)
    noted.notes = f"GX type: `{config.type}`"
    return noted

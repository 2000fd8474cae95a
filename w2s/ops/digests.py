"""Content digests of a registered model's files, checked whenever the model is downloaded or loaded.

The model's weights live in the artifact store, which anyone holding a write key to the bucket can
change without passing MLflow's auth; the registry's version tags can only be written through
MLflow. So registration records the sha256 of every file of the model folder (the `artifacts/model`
folder of the logged pyfunc: weights, tokenizer, metadata) as the version tag `TAG`, and every
download (`w2s predict`, the promotion gate) and every load by the serving pyfunc compares the
files it got with it, refusing a mismatch in one line. A version without the tag (registered before
digests were recorded) is loaded unchecked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from w2s.errors import IntegrityError

TAG = "model_sha256"  # version tag: JSON {relative path: sha256 hex} of the model folder's files
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RUN_ID = re.compile(r"[0-9a-f]{32}")

log = logging.getLogger(__name__)


def model_digests(folder: Path) -> dict[str, str]:
    """The sha256 of every file under `folder`, keyed by its POSIX path relative to `folder`."""
    out: dict[str, str] = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        with path.open("rb") as f:
            out[path.relative_to(folder).as_posix()] = hashlib.file_digest(f, "sha256").hexdigest()
    return out


def digest_tag(folder: Path) -> str:
    """The value of the `TAG` version tag for a model folder (compact JSON, sorted keys)."""
    return json.dumps(model_digests(folder), sort_keys=True, separators=(",", ":"))


def expected_digests(tags: dict[str, str], what: str) -> dict[str, str] | None:
    """The digests a version's tags record, or None when it has no `TAG` (registered before them)."""
    raw = tags.get(TAG)
    if raw is None:
        return None
    try:
        expected = json.loads(raw)
    except ValueError:
        expected = None
    if (
        not isinstance(expected, dict)
        or not expected
        or not all(isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in expected.items())
    ):
        raise IntegrityError(f"{what}: its tag {TAG} is not a JSON map of file paths to sha256 digests")
    return expected


def verify_model(folder: Path, expected: dict[str, str], what: str | None = None) -> None:
    """Refuse, in one line, a model folder whose files are not exactly those `expected` records:
    a file changed, missing, or added."""
    actual = model_digests(folder)
    changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    missing = sorted(expected.keys() - actual.keys())
    added = sorted(actual.keys() - expected.keys())
    problem = (
        f"{changed[0]} does not match its registered sha256 ({actual[changed[0]][:12]}… is not "
        f"{expected[changed[0]][:12]}…)"
        if changed
        else f"{missing[0]} is missing"
        if missing
        else f"{added[0]} was not registered"
        if added
        else None
    )
    if problem is not None:
        raise IntegrityError(
            f"{what or folder}: model file {problem}; refusing to load a model whose files differ from the "
            f"ones registered (version tag {TAG})"
        )


def verify_download(folder: Path, name: str, version: str) -> None:
    """Check a downloaded version's model folder against its registered digests (if it has them)."""
    from w2s.ops.tracking import client

    tags = client().get_model_version(name, version).tags
    expected = expected_digests(tags, f"{name}/{version}")
    if expected is None:
        log.info("%s/%s has no %s tag (registered before digests): not checked", name, version, TAG)
        return
    verify_model(folder, expected, f"{name}/{version}")


def verify_served(folder: Path) -> None:
    """Check the model folder of a pyfunc being loaded (`folder` is its `artifacts/model`) against
    the registered version it was logged as. The logged model's `MLmodel` names its run and model
    id; the registry (MLFLOW_REGISTRY_URI, else MLFLOW_TRACKING_URI) says which version that is and
    its digests. A model no configured registry knows (loaded from a plain folder) is not checked."""
    import yaml
    from mlflow.exceptions import MlflowException

    from w2s.ops.tracking import client

    mlmodel = Path(folder).parent.parent / "MLmodel"
    meta: Any = yaml.safe_load(mlmodel.read_text()) if mlmodel.is_file() else None
    run_id = meta.get("run_id") if isinstance(meta, dict) else None
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        log.info("%s: no MLmodel with a run id beside it: digests not checked", folder)
        return
    if not (os.environ.get("MLFLOW_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI")):
        # mlflow.set_tracking_uri exports the variable too; without either there is no registry
        # to ask, and MLflow's default store would be created in the working directory
        log.info("model of run %s: no registry configured: digests not checked", run_id)
        return
    model_id = meta.get("model_id")
    try:
        versions = client().search_model_versions(f"run_id='{run_id}'")
    except MlflowException as exc:
        log.warning("model of run %s: the registry did not answer (%s): digests not checked", run_id, exc)
        return
    for v in versions:
        if model_id and getattr(v, "model_id", None) not in (None, model_id):
            continue  # another model logged by the same run
        expected = expected_digests(v.tags, f"{v.name}/{v.version}")
        if expected is not None:
            verify_model(folder, expected, f"{v.name}/{v.version}")
            return
    log.info("model of run %s: no registered version with a %s tag: digests not checked", run_id, TAG)

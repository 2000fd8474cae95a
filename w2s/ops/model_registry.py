"""Log the student as a text-in pyfunc, register a version, tag it, and set an alias."""

from __future__ import annotations

import re
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import w2s
from w2s.errors import ServiceUnavailable, W2SError, redact
from w2s.ops import digests
from w2s.ops.tracking import client

ENTRY = Path(__file__).parent / "serving" / "entry.py"
_HEX = re.compile(r"[0-9a-f]{16,128}")


# Where a serving environment built from the model (`mlflow models serve --env-manager virtualenv`)
# gets torch: the CPU build, which PEP 440 orders above PyPI's CUDA build of the same version. A
# GPU server serves from an environment that has CUDA torch (`--env-manager local`; README).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_requirements() -> list[str]:
    """Pinned requirements of the serving code; explicit pins make logging fast (no inference)."""
    pins = [f"--extra-index-url {TORCH_CPU_INDEX}"]
    for dist in ("torch", "transformers", "peft", "safetensors", "tokenizers", "pandas", "numpy", "mlflow"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{dist}=={version.split('+')[0]}")
    return pins


def log_and_register(
    run_id: str,
    model_dir: Path,
    label_names: list[str],
    name: str,
    alias: str,
    tags: dict[str, Any],
    metrics: dict[str, float | None] | None = None,
    evaluated_on: tuple[str, str] | None = None,
) -> str:
    """Log `model_dir` under `run_id` as a pyfunc, register it, tag it; return the version.

    `metrics` are logged linked to the logged model (its page in MLflow lists them), measured on
    the dataset `evaluated_on` names (name, digest) when given."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([ColSpec("double", n) for n in label_names]),
    )
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # MLflow nags about predict() type hints; the explicit signature above is the schema.
        warnings.filterwarnings("ignore", message=".*[Tt]ype hint.*", category=UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY),
            artifacts={"model": str(model_dir)},
            code_paths=[str(Path(w2s.__file__).parent)],
            signature=signature,
            pip_requirements=pip_requirements(),
            input_example=["an example"],
        )
    if metrics:
        link_metrics(run_id, info.model_id, metrics, evaluated_on)
    str_tags = {k: str(v) for k, v in tags.items() if v is not None}
    # what every later download and the serving pyfunc check the model's files against
    str_tags[digests.TAG] = digests.digest_tag(model_dir)
    version = mlflow.register_model(info.model_uri, name, tags=str_tags)
    client().set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def link_metrics(
    run_id: str, model_id: str, metrics: dict[str, float | None], evaluated_on: tuple[str, str] | None
) -> None:
    """Log `metrics` on `run_id` linked to the logged model `model_id` (and to a dataset)."""
    import math

    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    dataset_name, digest = evaluated_on or (None, None)
    items = [
        Metric(k, float(v), now, 0, model_id=model_id, dataset_name=dataset_name, dataset_digest=digest)
        for k, v in sorted(metrics.items())
        if v is not None and math.isfinite(float(v))
    ]
    if items:
        client().log_batch(run_id, metrics=items)


STUDENT_KEY_TAG = "student_cache_key"


def version_of_student(name: str, student_key: str) -> str | None:
    """The registered version of `name` whose student has this cache key (the lowest, should
    there be several), or None: the same key means the same trained weights."""
    if not _HEX.fullmatch(student_key):
        raise W2SError(f"not a cache key: {student_key!r}")
    # a name nothing is registered under yet finds no version (no error)
    found = client().search_model_versions(f"name='{name}' and tags.{STUDENT_KEY_TAG}='{student_key}'")
    versions = sorted(int(v.version) for v in found)
    return str(versions[0]) if versions else None


def registered_model(name: str) -> Any | None:
    """The registered model `name`, or None when nothing is registered under it yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


@dataclass(frozen=True)
class Registration:
    """The version a run's student is registered as, and whether it was already there."""

    name: str
    version: str
    alias: str
    reused: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": f"models:/{self.name}@{self.alias}",
            "reused": self.reused,
        }


def register_student(
    lock: AbstractContextManager[Any],
    run_id: str,
    pipeline_run_id: str,
    model_dir: Path,
    label_names: list[str],
    student_key: str,
    name: str,
    alias: str,
    gated_alias: str,
    tags: dict[str, Any],
    metrics: dict[str, float | None] | None = None,
    evaluated_on: tuple[str, str] | None = None,
) -> Registration:
    """Register a run's student under `alias`, or point `alias` at the version that already holds
    a student with the same cache key (the same weights: nothing new is logged or registered, and
    the version is tagged with `pipeline_run_id`). A retried registration is therefore idempotent.

    Everything happens inside `lock` (the model's promotion lock), so no gate, rollback or gc sees
    the registry half-way, and two runs of one student register it once. `gated_alias` is the
    alias only the promotion gate moves; registering onto it is refused."""
    if alias == gated_alias:
        raise W2SError(f"registration may not move @{gated_alias}: only the promotion gate moves it")
    with lock:
        existing = version_of_student(name, student_key)
        if existing is not None:
            reuse_version(name, existing, alias, pipeline_run_id)
            return Registration(name, existing, alias, reused=True)
        version = log_and_register(
            run_id,
            model_dir,
            label_names,
            name,
            alias,
            {**tags, STUDENT_KEY_TAG: student_key},
            metrics,
            evaluated_on,
        )
    return Registration(name, version, alias, reused=False)


def reuse_version(name: str, version: str, alias: str, run_id: str) -> None:
    """Point `alias` at an existing version and record the run that found it unchanged."""
    c = client()
    c.set_model_version_tag(name, version, "last_confirmed_by_run", run_id)
    c.set_registered_model_alias(name, alias, version)


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`name/version`, `name@alias`, or `models:/…` of either, into (name, version, alias)."""
    text = ref.removeprefix("models:/").strip()
    if "@" in text:
        name, _, alias = text.partition("@")
        if name and alias:
            return name, None, alias
    elif "/" in text:
        name, _, version = text.rpartition("/")
        if name and version.isdigit():
            return name, version, None
    raise W2SError(f"model reference '{ref}' is not <name>/<version> or <name>@<alias>")


def _absent(exc: Exception) -> bool:
    """Whether a registry error says that the model, version or alias asked for does not exist.
    MLflow raises RESOURCE_DOES_NOT_EXIST for a missing model or version, but INVALID_PARAMETER_VALUE
    with "Registered model alias X not found." for a missing alias; every other error (a refused
    login, an outage, a server error) is not an answer about the registry's content."""
    code = getattr(exc, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and bool(re.search(r"alias \S+ not found", str(exc)))


def _unavailable(exc: Exception, what: str) -> ServiceUnavailable:
    import mlflow

    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    server = redact(mlflow.get_registry_uri())
    return ServiceUnavailable(f"MLflow registry {server} did not answer {what}: {redact(detail)[:300]}")


def resolve_version(ref: str):
    """The registered model version a reference names; a clear error when there is none, and
    ServiceUnavailable when the registry did not answer (a refused login, an outage)."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_ref(ref)
    c = client()
    what = f"alias @{alias}" if alias else f"version {version}"
    try:
        if alias is not None:
            return c.get_model_version_by_alias(name, alias)
        return c.get_model_version(name, str(version))
    except MlflowException as exc:
        if _absent(exc):
            raise W2SError(f"registered model '{name}' has no {what}") from None
        raise _unavailable(exc, f"the lookup of {name} {what}") from None


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist.
    Any other registry error raises ServiceUnavailable: an outage must never read as "no
    champion"."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if _absent(exc):
            return None
        raise _unavailable(exc, f"the lookup of {name}@{alias}") from None


def pipeline_run_id(version) -> str:
    """The pipeline's parent run behind a model version (the version's own run is `register`)."""
    run = client().get_run(version.run_id)
    return run.data.tags.get("mlflow.parentRunId", version.run_id)


def download_model(name: str, version: str, dest: Path) -> Path:
    """Download a version's model folder (safetensors weights, tokenizer, metadata); no unpickling.
    Its files are checked against the digests registered with the version (`w2s.ops.digests`)."""
    import mlflow

    from w2s.ops.digests import verify_download

    root = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dest))
    folder = Path(root) / "artifacts" / "model"
    if not (folder / "model.safetensors").is_file():
        raise W2SError(f"{name}/{version} holds no w2s model folder (artifacts/model/model.safetensors)")
    verify_download(folder, name, version)
    return folder

"""Log the student as a text-in pyfunc, register a version, tag it, and set an alias."""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import w2s

ENTRY = Path(__file__).parent / "serving" / "entry.py"


def pip_requirements() -> list[str]:
    """Pinned requirements of the serving code; explicit pins make logging fast (no inference)."""
    pins = []
    for dist in ("torch", "transformers", "safetensors", "tokenizers", "pandas", "numpy", "mlflow"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{dist}=={version.split('+')[0]}")
    return pins


def log_and_register(run_id: str, model_dir: Path, label_names: list[str], name: str,
                     alias: str, tags: dict[str, Any]) -> str:
    """Log `model_dir` under `run_id` as a pyfunc, register it, tag it; return the version."""
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
            name="model", python_model=str(ENTRY), artifacts={"model": str(model_dir)},
            code_paths=[str(Path(w2s.__file__).parent)], signature=signature,
            pip_requirements=pip_requirements(), input_example=["an example"],
        )
    str_tags = {k: str(v) for k, v in tags.items() if v is not None}
    version = mlflow.register_model(info.model_uri, name, tags=str_tags)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)

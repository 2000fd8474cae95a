"""Model files are checked against the sha256 digests registered with their version: a file
changed in the artifact store (by anyone holding a write key to the bucket, past MLflow's auth)
is refused in one line by `w2s predict` (and every other download) and by the serving pyfunc.

The registry is a real MLflow SQLite store with a real artifact folder; the version is created
the way registration records it (the digests of the model folder as the `model_sha256` tag), with
small stand-in weight files: the refusal happens before any file is read as a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from w2s.cli.main import main

NAME = "w2s-test"


def _model_folder(root: Path) -> Path:
    folder = root / "model-src"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "num_labels": 2}))
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    return folder


def test_the_digests_name_every_file_and_any_change_is_refused(tmp_path):
    from w2s.errors import IntegrityError
    from w2s.ops.digests import model_digests, verify_model

    folder = _model_folder(tmp_path)
    expected = model_digests(folder)
    assert set(expected) == {"model.safetensors", "config.json", "tokenizer/vocab.txt"}
    verify_model(folder, expected)  # untouched: accepted

    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])  # one bit
    with pytest.raises(IntegrityError, match=r"model file model.safetensors does not match its registered sha256"):
        verify_model(folder, expected, "w2s-test/1")
    weights.write_bytes(original)
    (folder / "tokenizer" / "vocab.txt").unlink()
    with pytest.raises(IntegrityError, match=r"tokenizer/vocab.txt is missing"):
        verify_model(folder, expected)
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (folder / "extra.bin").write_bytes(b"\x80\x04")  # an added file (a pickle, say) is refused too
    with pytest.raises(IntegrityError, match=r"extra.bin was not registered") as err:
        verify_model(folder, expected)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def _store(tmp_path_factory: pytest.TempPathFactory):
    """A project whose local registry holds w2s-test/1: a logged model folder with its digests
    tagged as registration records them; (project root, stored weights file)."""
    tmp_path = tmp_path_factory.mktemp("digests")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield _register(tmp_path)


@pytest.fixture
def registered(_store, monkeypatch: pytest.MonkeyPatch):
    """The module's registry, the project as the working directory; the stored weights are put
    back after each test that tampers with them."""
    from w2s.ops import tracking
    from w2s.project import Project

    root, weights = _store
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.configure(Project(root))
    original = weights.read_bytes()
    yield root, weights
    weights.write_bytes(original)


def _register(tmp_path: Path) -> tuple[Path, Path]:
    from mlflow import MlflowClient

    from w2s.ops import digests, tracking
    from w2s.project import Project

    root = tmp_path / "proj"
    root.mkdir()
    project = Project(root)
    uri = tracking.configure(project)
    client = MlflowClient(uri, registry_uri=uri)
    run = client.create_run(tracking.experiment_id(project, "w2s"))
    folder = _model_folder(tmp_path)
    logged = tmp_path / "logged"
    (logged / "artifacts").mkdir(parents=True)
    (logged / "MLmodel").write_text(yaml.safe_dump({"run_id": run.info.run_id, "model_id": "m-0123"}))
    shutil.copytree(folder, logged / "artifacts" / "model")
    client.log_artifacts(run.info.run_id, str(logged), "model")
    tags = {digests.TAG: digests.digest_tag(folder)}  # the line registration adds
    client.create_registered_model(NAME)
    client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags)
    client.set_registered_model_alias(NAME, "challenger", "1")
    weights = (
        Path(run.info.artifact_uri.removeprefix("file://")) / "model" / "artifacts" / "model" / "model.safetensors"
    )
    assert weights.is_file(), "the stored copy in the artifact store"
    return root, weights


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))


def test_download_model_checks_the_registered_digests(registered, tmp_path):
    from w2s.errors import IntegrityError
    from w2s.ops.model_registry import download_model

    _, weights = registered
    folder = download_model(NAME, "1", tmp_path / "ok")
    assert (folder / "model.safetensors").read_bytes() == weights.read_bytes()
    _tamper(weights)
    with pytest.raises(IntegrityError, match=rf"{NAME}/1: model file model.safetensors does not match"):
        download_model(NAME, "1", tmp_path / "tampered")


def test_predict_refuses_a_tampered_model_in_one_line_and_writes_nothing(registered, capfd, tmp_path, monkeypatch):
    root, weights = registered
    monkeypatch.setenv("W2S_PROJECT_DIR", str(root))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new.csv").write_text("text\nhello there\n")
    _tamper(weights)
    code = main(["predict", f"{NAME}@challenger", "--input", "new.csv", "--output", "scores.parquet"])
    err = capfd.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {NAME}/1: model file model.safetensors does not match")
    assert "refusing to load" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"], "no output, record or temp file"


def test_the_serving_pyfunc_refuses_a_tampered_model_before_loading_it(registered, tmp_path, monkeypatch):
    """What `mlflow models serve -m models:/…` and `mlflow.pyfunc.load_model` run: the model's
    load_context, on the downloaded copy, with the registry configured."""
    import mlflow

    from w2s.errors import IntegrityError
    from w2s.ops.digests import verify_served
    from w2s.ops.serving.model import TextClassifierModel

    root, _ = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / '.w2s' / 'mlflow.db'}")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{NAME}/1", dst_path=str(tmp_path / "s")))
    model = local / "artifacts" / "model"
    verify_served(model)  # untouched: accepted
    _tamper(model / "model.safetensors")
    with pytest.raises(IntegrityError, match=rf"{NAME}/1: model file model.safetensors does not match"):
        TextClassifierModel().load_context(SimpleNamespace(artifacts={"model": str(model)}))

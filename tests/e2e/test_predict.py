"""`w2s predict`: batch inference with a registered version of the session's tiny run, through
the real CLI and MLflow registry; the served pyfunc is the reference for its probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s.cli.main import main

from conftest import free_port

MODEL = "w2s-test"


@pytest.fixture
def in_run(tiny_run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The tiny run's project as the one `w2s` finds; the test's files go to `tmp_path`."""
    monkeypatch.setenv("W2S_PROJECT_DIR", str(tiny_run.root))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _texts(tiny_run, n: int) -> pd.DataFrame:
    splits = pd.read_parquet(Path(tiny_run.result.run_dir) / "splits.parquet")
    return splits[splits["split"] == "test"].head(n)[["id", "text"]].reset_index(drop=True)


def test_predict_writes_the_served_models_probabilities_for_every_input_id(tiny_run, in_run, capsys):
    import mlflow

    rows = _texts(tiny_run, 40)
    rows.to_csv(in_run / "new.csv", index=False)

    code = main(["predict", f"{MODEL}@challenger", "--input", "new.csv", "--output", "scores.parquet", "--json"])

    assert code == 0, capsys.readouterr().err
    record = json.loads(capsys.readouterr().out)
    out = pd.read_parquet(in_run / "scores.parquet")
    names = tiny_run.result.label_names
    assert out.columns.tolist() == ["id", "label", *[f"p_{n}" for n in names]]
    assert out["id"].tolist() == rows["id"].astype(str).tolist()
    version = tiny_run.client().get_model_version_by_alias(MODEL, "challenger")
    assert record["version"] == str(version.version) and record["run_id"] == version.run_id
    assert json.loads((in_run / "scores.parquet.json").read_text()) == record
    assert record["rows"] == 40 and record["input_md5"]
    mlflow.set_tracking_uri(f"sqlite:///{tiny_run.root / '.w2s' / 'mlflow.db'}")
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@challenger").predict(rows[["text"]])
    probs = out[[f"p_{n}" for n in names]].to_numpy()
    np.testing.assert_allclose(probs, served[names].to_numpy(), atol=1e-5)
    assert out["label"].tolist() == [names[i] for i in probs.argmax(axis=1)]


def test_predict_reads_another_text_column_in_batches_and_numbers_rows_without_ids(tiny_run, in_run, capsys):
    rows = _texts(tiny_run, 7).rename(columns={"text": "body"})[["body"]]
    (in_run / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows.to_dict("records")))

    code = main(["predict", f"{MODEL}/1", "--input", "posts.jsonl", "--output", "out.csv", "--text-column", "body"])

    assert code == 0, capsys.readouterr().err
    out = pd.read_csv(in_run / "out.csv")
    assert out["id"].tolist() == list(range(7))
    assert np.allclose(out.filter(like="p_").sum(axis=1), 1.0, atol=1e-5)
    captured = capsys.readouterr()
    assert "7 rows -> out.csv" in captured.out
    assert captured.err.splitlines()[-1].startswith("predict: 7 rows, "), "off a terminal: a final progress line"


@pytest.mark.parametrize(
    "args, setup, message",
    [
        (["--text-column", "body"], None, "new.csv: no column 'body' (--text-column); columns are: id, text"),
        ([], "latin1", "new.csv: line 3: not UTF-8 text"),
        ([], "no-alias", f"registered model '{MODEL}' has no alias @nope"),
        ([], "bad-output", "out.xlsx: unsupported output type '.xlsx'"),
        ([], "missing", "input file not found"),
    ],
)
def test_bad_predict_input_is_one_line_exit_2_and_writes_nothing(tiny_run, in_run, capsys, args, setup, message):
    _texts(tiny_run, 5).to_csv(in_run / "new.csv", index=False)
    model, inp, outp = f"{MODEL}@challenger", "new.csv", "out.parquet"
    if setup == "latin1":
        (in_run / "new.csv").write_bytes(b"id,text\na,fine\nb,caf\xe9\n")
    elif setup == "no-alias":
        model = f"{MODEL}@nope"
    elif setup == "bad-output":
        outp = "out.xlsx"
    elif setup == "missing":
        inp = "absent.csv"

    code = main(["predict", model, "--input", inp, "--output", outp, *args])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1], err
    assert sorted(p.name for p in in_run.iterdir()) == ["new.csv"]  # no output, no record, no temp file


def test_mlflow_models_serve_answers_invocations_on_loopback_like_the_pyfunc(tiny_run, in_run):
    """The README's serving command, literally, against the run's store: POSTed texts come back
    as the probabilities the pyfunc gives; the model's requirements take torch's CPU build."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    import mlflow

    port = free_port()
    uri = f"sqlite:///{tiny_run.root / '.w2s' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    cmd = [mlflow_bin, "models", "serve", "-m", f"models:/{MODEL}@challenger", "--env-manager", "local"]
    log = (in_run / "serve.log").open("w")
    server = subprocess.Popen([*cmd, "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (in_run / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, (in_run / "serve.log").read_text()[-3000:]
                time.sleep(0.5)
        texts = _texts(tiny_run, 5)["text"].tolist()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": texts}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = pd.DataFrame(json.loads(r.read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@challenger")
    names = tiny_run.result.label_names
    np.testing.assert_allclose(answer[names].to_numpy(), model.predict(texts)[names].to_numpy(), atol=1e-5)
    lines = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{MODEL}@challenger")).read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert any(line.startswith("torch==2.13.0") for line in lines)

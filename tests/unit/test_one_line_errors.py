"""Inputs that used to give a traceback or fail late, through the real CLI: each one fails with
exactly one line on stderr (`error: ...`, naming what is wrong and where), exit code 2, before any
training, and the project holds nothing afterwards but the files the test wrote (no state folder:
no run, cache entry, MLflow store, registered model or alias).

Most cases call `w2s.cli.main.main` in this process. Two run the `w2s` console script in a fresh
process, as a user does: the CSV of random bytes (pyarrow's report of an undecodable row goes
through `sys.unraisablehook`, which pytest replaces in its own process) and the unreadable file
(the reading process must lack the right to read it, which a process running as root has: it
runs with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from its capability bounding set, so
that root is refused by the file's mode like any user)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from w2s.cli.main import main

from conftest import BIN, TINY_CONFIG

# A config that would train quickly, so that a case the CLI lets through shows up as a run that
# trained (and failed late, or not at all) rather than as a long test.
CONFIG: dict[str, Any] = {
    **TINY_CONFIG,
    "data": {"path": "d.csv"},
    "split": {"weak_train": 100, "transfer": 200, "val": 60, "test": 100},
    "strong": {**TINY_CONFIG["strong"], "num_layers": 1, "max_length": 16, "epochs": 0.2},
}


def _rows(n: int = 600) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"sample text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(n)],
            "label": ["pos" if i % 2 else "neg" for i in range(n)],
        }
    )


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding params.yaml and a good d.csv, as the working directory."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(CONFIG))
    _rows().to_csv(root / "d.csv", index=False)
    monkeypatch.chdir(root)
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _one_line(err: str, *parts: str) -> None:
    """The whole of stderr is one `error:` line holding every part."""
    assert err.endswith("\n") and err.count("\n") == 1, f"stderr is not one line:\n{err[-3000:]}"
    assert err.startswith("error: "), err
    for part in parts:
        assert part in err, (part, err)


def _cli(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capfd.readouterr().err


# --- config files -------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["run", "sweep"])
def test_a_config_file_that_is_not_utf8_is_one_line_naming_file_and_line(proj, capfd, verb):
    (proj / "latin1.yaml").write_bytes("seed: 0\n# café crème\n".encode("latin-1"))
    before = _files(proj)
    code, err = _cli(capfd, verb, "--config", "latin1.yaml")
    assert code == 2
    _one_line(err, "latin1.yaml: line 2: not UTF-8 text")
    assert _files(proj) == before


def test_a_sweep_file_with_a_yaml_syntax_error_is_one_line_naming_file_and_line(proj, capfd):
    (proj / "sweep.yaml").write_text("grid:\n  seed: [0, 1\nmax_workers: 1\n")
    before = _files(proj)
    code, err = _cli(capfd, "sweep", "--config", "sweep.yaml")
    assert code == 2
    _one_line(err, "sweep config sweep.yaml is not valid YAML: line 3")
    assert _files(proj) == before


# --- config values ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_a_non_finite_number_is_refused_at_load_before_any_training(proj, capfd, value):
    before = _files(proj)
    code, err = _cli(capfd, "run", "--set", f"strong.epochs={value}")
    assert code == 2
    _one_line(err, "config key 'strong.epochs': must be a finite number")
    assert _files(proj) == before, "nothing ran"


def _float_fields(model: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every float-typed leaf of a config model (methods' sections included)."""
    import typing

    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if typing.get_origin(ann) is dict:  # a mapping (promotion.floors): checked on its own below
            continue
        sub = [a for a in getattr(ann, "__args__", ()) + (ann,) if hasattr(a, "model_fields")]
        if sub:
            out += _float_fields(sub[0], f"{prefix}{name}.")
        elif "float" in str(ann):
            out.append(f"{prefix}{name}")
    return out


def test_every_float_field_of_every_section_refuses_inf_and_nan():
    from w2s.config import Config, load_config
    from w2s.errors import ConfigError

    fields = _float_fields(Config)
    assert {"strong.epochs", "strong.lr", "promotion.min_margin", "strong.distributed.timeout_s"} <= set(fields)
    assert any(f.startswith(("ensemble.", "corrector.", "smooth.")) for f in fields), "methods' sections too"
    for field in fields:
        for value in (".inf", "-.inf", ".nan"):
            with pytest.raises(ConfigError, match=rf"'{field}'.*finite"):
                load_config(None, [f"{field}={value}"])
    with pytest.raises(ConfigError, match=r"'promotion.floors.pgr'.*finite"):
        load_config(None, ["promotion.floors={pgr: .nan}"])
    assert math.isclose(load_config(None, ["strong.epochs=1e3"]).strong.epochs, 1000.0)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("registry.model_name", "it's-mine", 'model name "it\'s-mine" may hold only letters'),
        ("registry.model_name", "team/model", "may hold only letters"),
        ("registry.model_name", "m@champion", "may hold only letters"),
        ("registry.alias", "new'one", 'alias "new\'one" may hold only letters'),
        ("registry.alias", "latest", "is reserved by MLflow"),
        ("promotion.champion_alias", "v2", "is reserved by MLflow"),
    ],
    ids=["quote-in-name", "slash-in-name", "at-in-name", "quote-in-alias", "reserved-latest", "reserved-version"],
)
def test_a_model_name_or_alias_mlflow_filters_cannot_carry_is_refused_at_load(proj, capfd, key, value, message):
    before = _files(proj)
    code, err = _cli(capfd, "run", "--set", f"{key}={value}")
    assert code == 2
    _one_line(err, f"config key '{key}'", message)
    assert _files(proj) == before, "nothing ran"


# --- promotion.eval_set -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "verb, eval_set, message",
    [
        ("run", "missing.csv", "promotion.eval_set 'missing.csv': data file not found"),
        ("run", "../outside.csv", "promotion.eval_set '../outside.csv' escapes the project folder"),
        ("run", "body.csv", "promotion.eval_set 'body.csv': body.csv: no column 'text' (data.text_column)"),
        ("retrain", "body.csv", "promotion.eval_set 'body.csv': body.csv: no column 'text' (data.text_column)"),
        ("promote", "missing.csv", "promotion.eval_set 'missing.csv': data file not found"),
    ],
    ids=["run-missing", "run-escapes", "run-no-text-column", "retrain-no-text-column", "promote-missing"],
)
def test_a_wrong_promotion_eval_set_fails_before_training_naming_the_key(proj, capfd, verb, eval_set, message):
    _rows(150).rename(columns={"text": "body"}).to_csv(proj / "body.csv", index=False)
    before = _files(proj)
    code, err = _cli(capfd, verb, "--set", f"promotion.eval_set={eval_set}")
    assert code == 2
    _one_line(err, message)
    assert "data.path" not in err
    assert _files(proj) == before, "nothing ran, nothing was registered"


# --- data ---------------------------------------------------------------------------------------


def _parquet_with_a_damaged_page(path: Path, row_groups: int = 1) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(_rows(600 * row_groups), preserve_index=False)
    pq.write_table(table, path, row_group_size=600, compression="snappy", use_dictionary=False)
    meta = pq.ParquetFile(path).metadata
    column = meta.row_group(row_groups - 1).column(0)  # the text column of the last row group
    start = column.data_page_offset + 40  # past the page header: inside the compressed values
    data = bytearray(path.read_bytes())
    for i in range(start, start + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    pq.read_schema(path)  # the footer is intact: only reading the page can find the damage


def test_a_parquet_file_with_a_damaged_data_page_is_one_line(proj, capfd):
    _parquet_with_a_damaged_page(proj / "bad.parquet")
    before = _files(proj)
    code, err = _cli(capfd, "run", "--set", "data.path=bad.parquet")
    assert code == 2
    _one_line(err, "bad.parquet: cannot read PARQUET data (from data row 1 on)")
    assert _files(proj) == before


def test_a_damaged_page_deep_in_a_parquet_file_stops_ingest_with_the_rows_it_was_reading(tmp_path):
    """Past what the CLI's probe reads, ingest's own reader names the damage in one line."""
    from w2s.core.config import DataConfig
    from w2s.core.data.ingest import ingest_table
    from w2s.errors import DataError
    from w2s.project import Project

    _parquet_with_a_damaged_page(tmp_path / "deep.parquet", row_groups=3)
    with pytest.raises(DataError) as err:
        ingest_table(DataConfig(path="deep.parquet"), Project(tmp_path), tmp_path / "t.parquet", batch_rows=600)
    assert "deep.parquet: cannot read PARQUET data (from data row 1201 on)" in str(err.value)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.parquet"], "no table or scratch file left"


def _hf_dataset(path: Path, labels: list[int | None]) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    texts = [f"sample text number {i}" for i in range(len(labels))]
    datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features).save_to_disk(str(path))


@pytest.mark.parametrize("bad, shown", [(-1, "holds -1"), (None, "holds no value")])
def test_a_classlabel_column_holding_minus_one_or_none_is_one_line(proj, capfd, bad, shown):
    labels: list[int | None] = [i % 2 for i in range(300)]
    labels[41] = bad
    _hf_dataset(proj / "hf", labels)
    capfd.readouterr()  # the test's own save_to_disk progress is not the CLI's output
    before = _files(proj)
    code, err = _cli(capfd, "run", "--set", "data.path=null", "--set", "data.hf_name=hf")
    assert code == 2
    _one_line(err, "HF dataset 'hf': column 'label' (data.label_column)", shown, "at data row 42", "0..1: neg, pos")
    assert _files(proj) == before


def test_a_minus_one_deep_in_a_classlabel_column_stops_ingest_with_its_row(tmp_path):
    from w2s.core.config import DataConfig
    from w2s.core.data.sources import iter_source
    from w2s.errors import DataError
    from w2s.project import Project

    labels: list[int | None] = [i % 2 for i in range(300)]
    labels[250] = -1
    _hf_dataset(tmp_path / "hf", labels)
    batches, _ = iter_source(DataConfig(hf_name="hf"), Project(tmp_path), batch_rows=100)
    assert len(next(batches)) == 100  # the first batches are fine
    with pytest.raises(DataError, match=r"holds -1 at data row 251, not a class"):
        list(batches)


def _w2s(project: Path, *argv: str, drop_read_rights: bool = False) -> subprocess.CompletedProcess[str]:
    """The `w2s` console script in a fresh process, as a user runs it."""
    cmd = [str(BIN / "w2s"), *argv]
    if drop_read_rights and os.geteuid() == 0:
        cmd = [sys.executable, "-c", _WITHOUT_DAC_OVERRIDE, *cmd]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    # These cases stop before any flow runs: an API address nothing listens on keeps the CLI from
    # booting a temporary Prefect server it would never use (and no request is ever sent to it).
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)


# Runs argv[1:] as root without the capabilities that let root read any file: dropped from the
# bounding set, they are not in the permitted set of the program it executes.
_WITHOUT_DAC_OVERRIDE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        sys.exit(f"cannot drop capability {cap}: errno {ctypes.get_errno()}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_a_data_file_the_user_may_not_read_is_one_line(proj):
    locked = proj / "locked.csv"
    _rows().to_csv(locked, index=False)
    locked.chmod(0)
    # the setup holds: a process started as the test starts w2s cannot open the file
    check = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DAC_OVERRIDE, sys.executable, "-c", f"open({str(locked)!r}).read()"]
        if os.geteuid() == 0
        else [sys.executable, "-c", f"open({str(locked)!r}).read()"],
        capture_output=True,
        text=True,
    )
    assert "PermissionError" in check.stderr, "the file must be unreadable to the process under test"
    before = _files(proj)
    proc = _w2s(proj, "run", "--set", "data.path=locked.csv", drop_read_rights=True)
    assert proc.returncode == 2, proc.stderr[-3000:]
    _one_line(proc.stderr, "locked.csv: cannot read the file: Permission denied")
    assert _files(proj) == before


def test_a_csv_of_random_bytes_prints_only_its_one_line(proj):
    (proj / "random.csv").write_bytes(os.urandom(200_000))
    before = _files(proj)
    proc = _w2s(proj, "run", "--set", "data.path=random.csv")
    assert proc.returncode == 2
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    _one_line(proc.stderr, "random.csv: line ", "not UTF-8 text", "re-save the file as UTF-8")
    assert _files(proj) == before

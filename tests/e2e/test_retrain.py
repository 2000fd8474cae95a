"""Retraining with a promotion gate, promote / rollback by hand, the lineage audit and
reproduction, through the real CLI, Prefect flows, MLflow registry and DVC remote.

One project is shared by the module: three retrains build the registry history the later tests
read (bad model -> first champion, good model -> promoted, bad model again -> refused).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from cli.main import main
from w2s.io import file_md5

from conftest import TINY_CONFIG, make_project

MODEL = "w2s-test"
BAD = "strong.lr=1e-7"  # the student barely moves from its random head: a clearly worse model


def _client(project: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / '.w2s' / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)


def _alias(project: Path, alias: str) -> str | None:
    version = _client(project).get_registered_model(MODEL).aliases.get(alias)
    return None if version is None else str(version)


def _versions(project: Path) -> list[str]:
    return sorted(str(v.version) for v in _client(project).search_model_versions(f"name='{MODEL}'"))


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path, tiny_run) -> Iterator[dict]:
    # The DVC remote lives in the state folder, as in a new project's default layout; the good
    # retrain's models come from the session run's cache.
    base = tmp_path_factory.mktemp("retrain")
    root = make_project(
        base / "proj",
        bundled_dir,
        {**TINY_CONFIG, "promotion": {"floors": {}}},
        remote=base / "proj" / ".w2s" / "dvc-remote",
        warm=tiny_run.cache,
    )
    saved = os.environ.get("W2S_PROJECT_DIR")
    os.environ["W2S_PROJECT_DIR"] = str(root)
    codes = [main(["retrain", "--set", BAD]), main(["retrain"]), main(["retrain", "--set", BAD])]
    yield {"root": root, "codes": codes}
    if saved is None:
        os.environ.pop("W2S_PROJECT_DIR", None)
    else:
        os.environ["W2S_PROJECT_DIR"] = saved


def test_retrain_promotes_a_better_model_and_refuses_a_worse_one(history):
    root = history["root"]
    assert history["codes"] == [0, 0, 1]  # promoted (no champion yet), promoted, rejected
    assert _versions(root) == ["1", "2", "3"]
    assert _alias(root, "champion") == "2"
    assert _alias(root, "challenger") == "3"  # the pipeline's alias follows the newest version
    c = _client(root)
    tags = {v: c.get_model_version(MODEL, v).tags for v in ("1", "2", "3")}
    assert [tags[v]["promotion_decision"] for v in ("1", "2", "3")] == ["promoted", "promoted", "rejected"]
    assert tags["2"]["previous_champion"] == "1" and tags["1"]["previous_champion"] == "none"
    assert "margin -" in tags["3"]["promotion_reasons"]

    gates = [
        r for r in c.search_runs([c.get_experiment_by_name("w2s").experiment_id]) if r.info.run_name == "promotion-gate"
    ]
    by_version = {r.data.tags["model_version"]: r for r in gates}
    assert set(by_version) == {f"{MODEL}/1", f"{MODEL}/2", f"{MODEL}/3"}
    g2, g3 = by_version[f"{MODEL}/2"].data.metrics, by_version[f"{MODEL}/3"].data.metrics
    assert g2["margin"] > 0 and g3["margin"] < 0
    # both gates scored the same fixed set: the bad model's score is the old champion's
    assert g3["challenger_score"] == pytest.approx(g2["champion_score"], abs=0)
    decision = json.loads(
        Path(
            c.download_artifacts(by_version[f"{MODEL}/3"].info.run_id, "promotion.json", str(root / ".w2s"))
        ).read_text()
    )
    assert decision["promoted"] is False and decision["champion"] == "2"

    async def artifacts():
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["promotion-decision"]))
            )

    published = [a.data for a in asyncio.run(artifacts())]
    assert any("version 3 — **REJECTED**" in md for md in published)
    assert any("version 2 — **PROMOTED**" in md for md in published)


def test_a_failed_retrain_registers_nothing_and_moves_no_alias(history):
    from flows.retrain import retrain

    root = history["root"]
    with pytest.raises(Exception, match="expect_column_values_to_be_in_set"):
        retrain(project_dir=str(root), overrides=["data.labels=[x, y]"])  # fails the raw-data gate
    assert _versions(root) == ["1", "2", "3"]
    assert _alias(root, "champion") == "2" and _alias(root, "challenger") == "3"


def test_promote_by_hand_applies_the_gate_and_rollback_restores_the_champion(history, capsys):
    root = history["root"]
    code, out, _ = _cli(
        capsys, "promote", f"{MODEL}/3", "--set", "promotion.floors={pgr: 0.99}", "--set", "promotion.min_margin=-1"
    )
    assert code == 1 and "floor pgr ≥ 0.99 failed" in out
    assert _alias(root, "champion") == "2"

    code, out, _ = _cli(capsys, "promote", f"{MODEL}/3", "--set", "promotion.min_margin=-1")
    assert code == 0 and "PROMOTED" in out
    assert _alias(root, "champion") == "3"

    code, out, _ = _cli(capsys, "rollback")
    assert code == 0 and "version 3 -> version 2" in out
    assert _alias(root, "champion") == "2"
    code, _, err = _cli(capsys, "promote", f"{MODEL}@champion")
    assert code == 2 and err.strip() == f"error: {MODEL}/2 is already @champion"
    code, _, err = _cli(capsys, "promote", f"{MODEL}/9")
    assert code == 2 and err.strip() == f"error: registered model '{MODEL}' has no version 9"


def test_lineage_recovers_the_exact_weak_labels_and_reproduce_matches_after_the_data_changed(history, capsys, tmp_path):
    root = history["root"]
    code, out, _ = _cli(capsys, "lineage", f"{MODEL}@champion", "--json")
    info = json.loads(out)
    assert code == 0 and info["model"] == f"{MODEL}/2" and info["aliases"] == ["champion"]
    assert info["params"]["strong"]["lr"] == TINY_CONFIG["strong"]["lr"]
    assert info["data"]["in_dvc"] == "yes" and info["data"]["dvc_file"] == "data.dvc"
    weak_path = root / info["weak_labels"]["path"]
    original_md5 = info["weak_labels"]["md5"]
    assert file_md5(weak_path) == original_md5 and "remote_object" in info["weak_labels"]["fetch"]
    recorded = dict(info["metrics"])

    # Afterwards the data and the weak labels change, and the local DVC cache is gone.
    data_file = root / "data" / "election-tweets-2016.tab"
    lines = data_file.read_text().splitlines(keepends=True)
    data_file.write_text("".join(lines[:3] + lines[3:][::-1]))
    pd.read_parquet(weak_path).iloc[::-1].to_parquet(weak_path)
    assert file_md5(weak_path) != original_md5
    shutil.rmtree(root / ".dvc" / "cache")

    out_file = tmp_path / "recovered.parquet"
    code, out, err = _cli(capsys, "lineage", f"{MODEL}/2", "--fetch-weak-labels", str(out_file))
    assert code == 0 and "from the DVC remote 'local'" in err
    assert file_md5(out_file) == original_md5
    assert "weak labels" in out and original_md5 in out  # the table form

    code, out, err = _cli(capsys, "reproduce", f"{MODEL}/2", "--json")
    report = json.loads(out)
    assert code == 0 and report["identical"], out
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["w2s_acc"]["reproduced"] == recorded["w2s_acc"]
    assert rows["weak_labels_md5"]["reproduced"] == original_md5
    assert not list((root / ".w2s" / "reproduce").iterdir())  # the scratch project is removed
    assert _versions(root) == ["1", "2", "3"]  # a reproduction registers nothing


def test_make_clean_keeps_what_lineage_needs_and_purge_refuses_without_a_terminal(history, capsys, tmp_path):
    root = history["root"]
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)  # only the remote holds the labels
    assert (root / ".w2s" / "cache").is_dir() and (root / ".w2s" / "runs").is_dir()
    done = subprocess.run(
        ["make", "-s", "-f", str(makefile), "-C", str(root), "clean"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert not (root / ".w2s" / "cache").exists() and not (root / ".w2s" / "runs").exists()
    assert (root / ".w2s" / "mlflow.db").is_file() and (root / ".w2s" / "dvc-remote").is_dir()

    out_file = tmp_path / "after-clean.parquet"
    code, out, err = _cli(capsys, "lineage", f"{MODEL}@champion", "--fetch-weak-labels", str(out_file))
    assert code == 0, err
    assert file_md5(out_file) in out

    refused = subprocess.run(
        ["make", "-s", "-f", str(makefile), "-C", str(root), "purge"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode != 0 and "refusing without a terminal" in refused.stderr
    assert (root / ".w2s" / "mlflow.db").is_file() and _alias(root, "champion") == "2"


def test_two_promotions_at_once_leave_one_winner_and_the_loser_rejected_with_a_reason(history):
    """Two challengers of equal quality, both better than the champion, promoted at the same time
    by two processes. Unserialised, both would be scored against the old champion and pass; held
    one after the other, the second is scored against the first and misses the margin."""
    from conftest import BIN

    root = history["root"]
    c = _client(root)
    good = c.get_model_version(MODEL, "2")
    lineage_tags = {k: v for k, v in good.tags.items() if not k.startswith("promotion_")}
    twin = c.create_model_version(MODEL, good.source, run_id=good.run_id, tags=lineage_tags).version
    c.set_registered_model_alias(MODEL, "champion", "1")  # a clearly worse champion
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "W2S_PROJECT_DIR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    procs = {
        v: subprocess.Popen(
            [str(BIN / "w2s"), "promote", f"{MODEL}/{v}", "--set", "promotion.min_margin=0.001"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in ("2", str(twin))
    }
    outs = {v: p.communicate(timeout=600) for v, p in procs.items()}
    codes = {v: p.returncode for v, p in procs.items()}
    assert sorted(codes.values()) == [0, 1], {v: (codes[v], outs[v][1][-1500:]) for v in codes}
    winner = next(v for v, code in codes.items() if code == 0)
    loser = next(v for v, code in codes.items() if code == 1)
    assert _alias(root, "champion") == winner
    tags = c.get_model_version(MODEL, loser).tags
    assert tags["promotion_decision"] == "rejected"
    assert "margin" in tags["promotion_reasons"], tags["promotion_reasons"]
    assert c.get_model_version(MODEL, winner).tags["previous_champion"] == "1"
    c.set_registered_model_alias(MODEL, "champion", "2")  # as the module's history left it

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

from w2s.cli.main import main
from w2s.core.data.sources import table_md5
from w2s.io import file_md5
from w2s.ops.datasets import CONTEXT_TAG
from w2s.ops.versioning import dvc_md5

from conftest import TINY_CONFIG, make_project

MODEL = "w2s-test"
# The student barely moves from its random head: a clearly worse model (and, on 16 tokens, a
# cheaper one to train).
BAD = ["--set", "strong.lr=1e-7", "--set", "strong.max_length=16"]
BAD_AGAIN = ["--set", "strong.lr=2e-7", "--set", "strong.max_length=16"]  # the same config again is the same version


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
    codes = [main(["retrain", *BAD]), main(["retrain"]), main(["retrain", *BAD_AGAIN])]
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
    # both gates scored the same fixed set: version 2 scores the same as challenger and as champion
    assert g3["champion_score"] == pytest.approx(g2["challenger_score"], abs=0)
    decision = json.loads(
        Path(
            c.download_artifacts(by_version[f"{MODEL}/3"].info.run_id, "promotion.json", str(root / ".w2s"))
        ).read_text()
    )
    assert decision["promoted"] is False and decision["champion"] == "2"

    # a retrain versions the data first: the run's raw-data input is that DVC version
    v3 = c.get_model_version(MODEL, "3")
    run = c.get_run(c.get_run(v3.run_id).data.tags["mlflow.parentRunId"])
    raw = next(d.dataset for d in run.inputs.dataset_inputs if {t.key: t.value for t in d.tags}[CONTEXT_TAG] == "raw")
    assert raw.digest == run.data.tags["data_dvc_md5"] == dvc_md5(root / run.data.tags["data_dvc_file"])
    assert json.loads(raw.source)["remote"]

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

    async def retrain_states():
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName
        from prefect.client.schemas.sorting import FlowRunSort

        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["w2s-retrain"])), sort=FlowRunSort.START_TIME_ASC
            )
        return [(r.state.name, r.state.type.value) for r in runs if r.parameters.get("project_dir") == str(root)]

    # a rejection is visible in Prefect: a completed run whose state is named Rejected
    completed = ("Completed", "COMPLETED")
    assert asyncio.run(retrain_states())[:3] == [completed, completed, ("Rejected", "COMPLETED")]


def _disk(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_unchanged_retrains_register_nothing_new_and_leave_disk_flat(history, capsys):
    """The champion's config and data again: the same student cache key, so the same version.
    Nothing is logged or registered, the challenger alias points at the champion, the gate has
    nothing to compare and the retrain exits 0; the tracking store grows by run records only."""
    root = history["root"]
    c = _client(root)
    artifacts = root / ".w2s" / "mlartifacts"
    model_bytes = _disk(artifacts)  # every version's model so far
    before = {"versions": _versions(root), "bytes": _disk(artifacts)}
    for _ in range(3):
        assert main(["retrain"]) == 0
        out = capsys.readouterr().out
        assert f"{MODEL}/2 UNCHANGED" in out and "already @champion (unchanged); nothing to gate" in out
    assert _versions(root) == before["versions"] == ["1", "2", "3"]
    assert _alias(root, "champion") == "2" and _alias(root, "challenger") == "2"
    v2 = c.get_model_version(MODEL, "2")
    assert v2.tags["promotion_decision"] == "promoted" and v2.tags["last_confirmed_by_run"]
    grown = _disk(artifacts) - before["bytes"]
    c.set_registered_model_alias(MODEL, "challenger", "3")  # as the module's history left it, also on failure below
    assert grown < 0.02 * model_bytes / 3, f"{grown} bytes of artifacts for three unchanged retrains"
    # the same data gives the same gate results: the Data Docs point at the run that holds them
    exp = c.get_experiment_by_name("w2s").experiment_id
    last = c.search_runs([exp], "attributes.run_name = 'validate-data'", order_by=["attributes.start_time DESC"])[0]
    holder = last.data.tags["data_docs.raw_table.in_run"]
    assert "data_docs/raw_table/index.html" in {a.path for a in c.list_artifacts(holder, "data_docs/raw_table")}


def test_a_retrain_that_fails_at_its_gate_moves_no_champion(history):
    """The failure comes after the pipeline registered its challenger (an evaluation set whose
    labels the models do not know): the gate fails, and @champion stays where it was."""
    from w2s.flows.retrain import retrain

    root = history["root"]
    pd.DataFrame({"text": ["one tweet", "another tweet"], "label": ["x", "y"]}).to_csv(root / "eval-x.csv", index=False)
    overrides = [s for s in BAD_AGAIN if s != "--set"] + ["promotion.eval_set=eval-x.csv", "promotion.min_eval_rows=1"]
    with pytest.raises(Exception, match="evaluation label 'x' is not one of the model's labels"):
        retrain(project_dir=str(root), overrides=overrides)
    assert _versions(root) == ["1", "2", "3"]  # the challenger is version 3 again (same student)
    assert _alias(root, "champion") == "2" and _alias(root, "challenger") == "3"
    assert _client(root).get_model_version(MODEL, "3").tags["promotion_decision"] == "rejected"  # its last gate's


def test_a_promotion_whose_decision_cannot_be_recorded_moves_nothing(history, capsys, monkeypatch):
    """The decision is logged before the alias moves: when logging fails, the champion stays and
    the promotion fails, instead of a moved champion without its record."""
    from w2s.ops import tracking

    root = history["root"]

    def store_full(self, obj, name):
        raise OSError("artifact store is full")

    monkeypatch.setattr(tracking.RunLog, "dict", store_full)
    code, _, err = _cli(capsys, "promote", f"{MODEL}/3", "--set", "promotion.min_margin=-1")
    assert code == 4 and "artifact store is full" in err.strip().splitlines()[-1]
    assert _alias(root, "champion") == "2"
    assert _client(root).get_model_version(MODEL, "3").tags["promotion_decision"] == "rejected"


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


def _race(root: Path, folder_b: Path, extra_env: dict[str, str]) -> tuple[str, str]:
    """Promote version 2 and a twin of it (equally good, both better than version 1, made the
    champion) at the same time from two processes, one in `root` and one in `folder_b`; return
    (winner, loser) after checking there is exactly one of each and the loser's reason. Leaves
    the champion on version 2 and removes the twin, as the module's history had them."""
    from conftest import BIN

    c = _client(root)
    good = c.get_model_version(MODEL, "2")
    keep = {k: v for k, v in good.tags.items() if not k.startswith(("promotion_", "last_confirmed"))}
    twin = str(c.create_model_version(MODEL, good.source, run_id=good.run_id, tags=keep).version)
    c.set_registered_model_alias(MODEL, "champion", "1")  # a clearly worse champion
    drop = ("MLFLOW_", "PREFECT_API", "W2S_PROJECT_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # Each promotion stays 3 s inside its critical section (gate done, decision not applied):
    # the two surely overlap, so only the lock can make one wait for the other.
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", W2S_FAULT_PAUSE_IN_PROMOTION_S="3", **extra_env)
    # the data of the project changed (the lineage test), so the recomputed test split overlaps
    # the models' training rows, which the gate leaves out of its 120
    sets = ["--set", "promotion.min_margin=0.001", "--set", "promotion.min_eval_rows=20"]
    procs = {
        v: subprocess.Popen(
            [str(BIN / "w2s"), "promote", f"{MODEL}/{v}", *sets],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v, folder in (("2", root), (twin, folder_b))
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
    c.set_registered_model_alias(MODEL, "champion", "2")
    c.delete_model_version(MODEL, twin)
    return winner, loser


def test_two_promotions_at_once_leave_one_winner_and_the_loser_rejected_with_a_reason(history):
    """Two challengers of equal quality, both better than the champion, promoted at the same time
    by two processes. Unserialised, both would be scored against the old champion and pass; held
    one after the other, the second is scored against the first and misses the margin."""
    root = history["root"]
    _race(root, root, {})


def test_promotions_from_two_machines_sharing_a_registry_are_serialised_by_a_prefect_limit(history, tmp_path):
    """Two machines: two project folders (so two file locks) on one registry and one Prefect
    server (this test session's, a real API server in its own process). Only the server's global
    concurrency limit can serialise them; with it, the race still has exactly one winner."""
    from prefect.server.api.server import SubprocessASGIServer

    root = history["root"]
    machine_b = tmp_path / "machine-b"
    shutil.copytree(root, machine_b, ignore=shutil.ignore_patterns(".w2s", "cache"))
    server = SubprocessASGIServer()
    server.start()  # a no-op where the session already started it
    shared = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.w2s' / 'mlflow.db'}",
        "PREFECT_API_URL": server.api_url,
    }
    _race(root, machine_b, shared)
    assert not (machine_b / ".w2s" / "mlflow.db").exists(), "machine B used the shared registry"


def test_a_retrain_on_appended_data_is_gated_on_rows_neither_model_trained_on(history):
    """Appended rows move the splits (a permutation of row positions): rows the champion trained
    on land in the new run's test split. The gate leaves them out, matched by text."""
    from w2s.core.data.split import TRAINED_ROWS_FILE, text_digests
    from w2s.flows.retrain import retrain

    root = history["root"]
    data_file = root / "data" / "election-tweets-2016.tab"
    lines = data_file.read_text().splitlines(keepends=True)
    appended = []
    for i, line in enumerate(lines[3:303]):  # new tweets: existing ones with a new ending
        cells = line.rstrip("\n").split("\t")
        cells[9] = f"{cells[9]} (follow-up {i})"
        appended.append("\t".join(cells) + "\n")
    data_file.write_text("".join(lines + appended))
    champion = _alias(root, "champion")
    out = retrain(project_dir=str(root), overrides=["promotion.min_eval_rows=20"])
    decision = out["decision"]
    assert decision["champion"] == champion

    c = _client(root)

    def trained(version: str) -> set[str]:
        register_run = c.get_run(c.get_model_version(MODEL, version).run_id)
        run_id = register_run.data.tags["mlflow.parentRunId"]
        return set(pd.read_parquet(c.download_artifacts(run_id, TRAINED_ROWS_FILE, str(root / ".w2s")))["text_md5"])

    splits = pd.read_parquet(Path(out["run_dir"]) / "splits.parquet")
    test = splits[splits["split"] == "test"].reset_index(drop=True)
    seen = trained(champion) | trained(decision["challenger"])
    overlap = text_digests(test["text"]).isin(seen).to_numpy()
    assert overlap.sum() > 0, "appending moved some of the champion's training rows into the new test split"
    assert decision["eval_set"]["excluded_trained_rows"] == int(overlap.sum())
    kept = test.loc[~overlap, ["id", "text", "label"]].reset_index(drop=True)
    assert decision["eval_set"]["rows"] == len(kept) >= 20
    assert decision["eval_set"]["md5"] == table_md5(kept, ["id", "text", "label"])
    assert decision["challenger_score"] is not None and decision["champion_score"] is not None


def test_gc_removes_what_no_alias_needs_and_lineage_and_reproduce_of_the_champion_still_work(history, capsys, tmp_path):
    root = history["root"]
    c = _client(root)
    versions = {str(v.version): v for v in c.search_model_versions(f"name='{MODEL}'")}
    aliased = {str(v) for v in c.get_registered_model(MODEL).aliases.values()}
    keep = aliased | {versions[v].tags.get("previous_champion", "none") for v in aliased} - {"none"}
    assert set(versions) - keep, "the module's history leaves unaliased versions to collect"

    code, out, _ = _cli(capsys, "gc", "--older-than", "0", "--force", "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["dry_run"] and _versions(root) == sorted(versions)
    assert {v.split("/")[1] for v in plan["kept_versions"]} == keep
    assert {v.split("/")[1] for v in plan["versions"]} == set(versions) - keep
    model_dirs = [p for p in (root / ".w2s" / "mlartifacts").rglob("models/m-*") if p.name in plan["logged_models"]]
    assert len(model_dirs) == len(plan["logged_models"]) >= 1 and all(_disk(p) > 10**6 for p in model_dirs)

    code, out, _ = _cli(capsys, "gc", "--older-than", "0", "--force", "--json")
    done = json.loads(out)
    assert code == 0 and not done["dry_run"] and done["versions"] == plan["versions"]
    assert _versions(root) == sorted(keep, key=int)
    assert all(_disk(p) == 0 for p in model_dirs), "the collected models' files are gone"
    assert done["bytes_freed"] >= sum(10**6 for _ in model_dirs)
    kept_keys = {versions[v].tags.get("student_cache_key") for v in keep}
    left = {p.name for p in (root / ".w2s" / "cache").glob("*/*") if not p.name.startswith(".")}
    assert left <= kept_keys, "only the kept versions' students stay in the cache"

    out_file = tmp_path / "after-gc.parquet"
    code, out, err = _cli(capsys, "lineage", f"{MODEL}@champion", "--fetch-weak-labels", str(out_file))
    assert code == 0 and file_md5(out_file) in out, err
    code, out, err = _cli(capsys, "reproduce", f"{MODEL}@champion", "--json")
    assert code == 0 and json.loads(out)["identical"], err[-2000:]

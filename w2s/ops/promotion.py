"""The promotion gate: score challenger and champion on one evaluation set, check the floors,
and move the champion alias only when every check passes. `rollback` moves it back.

A decision is computed first and applied afterwards; applying re-checks that the champion did
not move meanwhile, so two gates racing cannot both promote on a stale comparison.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from w2s.config import Config
from w2s.core.config import PromotionConfig
from w2s.core.data.sources import table_md5
from w2s.core.data.split import TRAINED_ROWS_FILE, text_digests
from w2s.core.metrics import accuracy, auroc
from w2s.errors import W2SError
from w2s.ops import model_registry, tracking
from w2s.ops.tracking import client
from w2s.project import Project

PREVIOUS_TAG = "previous_champion"


@dataclass
class Decision:
    """What the gate compared, what it found, and whether the challenger was promoted."""

    model: str
    challenger: str
    champion: str | None
    alias: str
    metric: str
    challenger_score: float | None
    champion_score: float | None
    margin: float | None
    min_margin: float
    floors: dict[str, dict[str, Any]]
    eval_set: dict[str, Any]
    min_eval_rows: int = 1
    promoted: bool = False
    reasons: list[str] = field(default_factory=list)
    unchanged: bool = False  # the challenger is the champion already: nothing was gated

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        """promoted, rejected, or unchanged (the challenger already was the champion)."""
        return "unchanged" if self.unchanged else "promoted" if self.promoted else "rejected"

    def summary(self) -> str:
        """One line: the verdict and why."""
        return f"{self.model}/{self.challenger} {self.verdict}: {'; '.join(self.reasons)}"

    def markdown(self) -> str:
        """The decision as a markdown report (a Prefect artifact and an MLflow file)."""

        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:.4f}"

        rows = [
            f"| {self.metric} on the evaluation set | {fmt(self.challenger_score)} | "
            f"{fmt(self.champion_score)} | margin {fmt(self.margin)} ≥ {self.min_margin} |",
            *[
                f"| floor: {k} | {fmt(f['value'])} | | ≥ {f['floor']}: {'ok' if f['ok'] else 'FAILED'} |"
                for k, f in self.floors.items()
            ],
        ]
        champion = f"version {self.champion}" if self.champion else "none"
        return "\n".join(
            [
                f"## Promotion gate: {self.model} version {self.challenger} — **{self.verdict.upper()}**",
                "",
                f"Champion before: {champion}. Evaluation set: {self.eval_set['source']} "
                f"({self.eval_set['rows']} rows, md5 {self.eval_set['md5'][:12]}; "
                f"{self.eval_set.get('excluded_trained_rows', 0)} rows a model trained on left out).",
                "",
                "| check | challenger | champion | rule |",
                "|---|---|---|---|",
                *rows,
                "",
                *[f"- {r}" for r in self.reasons],
            ]
        )


def evaluation_set(cfg: Config, project: Project, splits_path: Path | None = None) -> tuple[pd.DataFrame, str]:
    """The labelled rows both models are scored on, and a description of where they came from.

    A configured `promotion.eval_set` file wins; otherwise the test split of `splits_path`, or
    of the challenger's config recomputed from the project's current data.
    """
    from w2s.core.data.sources import canonicalise, read_source

    pcfg = cfg.promotion
    if pcfg.eval_set:
        data = cfg.data.model_copy(update={"path": pcfg.eval_set, "hf_name": None, "max_rows": None, "dedupe": False})
        raw, _ = read_source(data, project)
        table, _ = canonicalise(raw, data)
        source = pcfg.eval_set
    else:
        if splits_path is None:  # the challenger's splits, recomputed as its run made them
            from w2s.core.data.split import assign_splits

            raw, _ = read_source(cfg.data, project)
            frame = assign_splits(canonicalise(raw, cfg.data)[0], cfg.split, cfg.seed)
        else:
            frame = pd.read_parquet(splits_path)
        table = frame[frame["split"] == "test"]
        source = "test split of the challenger's config"
    table = table[["id", "text", "label"]].reset_index(drop=True)
    if table.empty or table["text"].isna().any() or table["label"].isna().any():
        raise W2SError(f"evaluation set ({source}) is empty or has missing texts or labels")
    return table, source


def score_model(folder: Path, table: pd.DataFrame) -> dict[str, float | None]:
    """Accuracy and AUROC of a saved classifier on the labelled rows."""
    from w2s.core.models.batching import predict_texts
    from w2s.core.models.classifier import load_classifier

    model, tokenizer, meta = load_classifier(folder)
    names = list(meta["label_names"])
    unknown = sorted(set(table["label"]) - set(names))
    if unknown:
        raise W2SError(f"evaluation label '{unknown[0]}' is not one of the model's labels {names}")
    y = table["label"].map({n: i for i, n in enumerate(names)}).to_numpy()
    probs = predict_texts(
        model, tokenizer, table["text"].tolist(), meta["max_length"], link=meta.get("link", "softmax")
    )
    return {"acc": accuracy(probs, y), "auroc": auroc(probs, np.asarray(y))}


def check_floors(metrics: dict[str, float], floors: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each floor with the run's value; an undefined (missing or null) metric fails its floor."""
    out = {}
    for name, floor in floors.items():
        value = metrics.get(name)
        out[name] = {"value": value, "floor": floor, "ok": value is not None and value >= floor}
    return out


def decide(decision: Decision) -> Decision:
    """Fill in `promoted` and the reasons from the scores and floors already on the decision."""
    reasons = []
    for name, f in decision.floors.items():
        if not f["ok"]:
            got = "undefined" if f["value"] is None else f"{f['value']:.4f}"
            reasons.append(f"floor {name} ≥ {f['floor']} failed ({got})")
    rows = decision.eval_set["rows"]
    if rows < decision.min_eval_rows:
        reasons.append(
            f"only {rows} evaluation rows are left once the {decision.eval_set.get('excluded_trained_rows', 0)} "
            f"that either model trained on are removed (promotion.min_eval_rows: {decision.min_eval_rows})"
        )
    elif decision.challenger_score is None:
        reasons.append(f"challenger {decision.metric} is undefined on the evaluation set")
    elif decision.champion is not None:
        if decision.margin is None:
            reasons.append(f"champion {decision.metric} is undefined on the evaluation set")
        elif decision.margin < decision.min_margin:
            reasons.append(
                f"{decision.metric} {decision.challenger_score:.4f} vs champion "
                f"{decision.champion_score:.4f}: margin {decision.margin:+.4f} < {decision.min_margin}"
            )
    decision.promoted = not reasons
    if decision.promoted:
        if decision.champion is None:
            reasons.append("no champion yet; every floor passed")
        else:
            reasons.append(
                f"{decision.metric} {decision.challenger_score:.4f} vs champion "
                f"{decision.champion_score:.4f}: margin {decision.margin:+.4f} ≥ {decision.min_margin}"
            )
    decision.reasons = reasons
    return decision


def run_metrics(version) -> dict[str, float]:
    """The metrics of the pipeline run that produced a model version."""
    return dict(client().get_run(model_registry.pipeline_run_id(version)).data.metrics)


def gate(cfg: Config, project: Project, challenger_ref: str, splits_path: Path | None = None) -> Decision:
    """Compare a registered version with the current champion; no side effects."""
    pcfg: PromotionConfig = cfg.promotion
    version = model_registry.resolve_version(challenger_ref)
    name, challenger = version.name, str(version.version)
    champion = model_registry.alias_version(name, pcfg.champion_alias)
    if champion == challenger:
        raise W2SError(f"{name}/{challenger} is already @{pcfg.champion_alias}")
    if splits_path is None and not pcfg.eval_set:  # by hand: the test split of the challenger's own config
        from w2s.ops.lineage import recorded_config

        recorded = Config.model_validate(recorded_config(model_registry.pipeline_run_id(version)))
        table, source = evaluation_set(recorded.model_copy(update={"promotion": pcfg}), project)
    else:
        table, source = evaluation_set(cfg, project, splits_path)
    models = [version] + ([client().get_model_version(name, champion)] if champion else [])
    table, overlap = unseen_rows(table, models)
    scores: dict[str, float | None] = {}
    champ_scores: dict[str, float | None] | None = None
    if len(table) >= pcfg.min_eval_rows:
        with tempfile.TemporaryDirectory() as tmp:
            scores = score_model(model_registry.download_model(name, challenger, Path(tmp) / "c"), table)
            champ_scores = (
                score_model(model_registry.download_model(name, champion, Path(tmp) / "k"), table) if champion else None
            )
    ch = scores.get(pcfg.metric)
    ko = champ_scores[pcfg.metric] if champ_scores else None
    decision = Decision(
        model=name,
        challenger=challenger,
        champion=champion,
        alias=pcfg.champion_alias,
        metric=pcfg.metric,
        challenger_score=ch,
        champion_score=ko,
        margin=None if ch is None or ko is None else ch - ko,
        min_margin=pcfg.min_margin,
        floors=check_floors(run_metrics(version), pcfg.floors),
        eval_set={"source": source, "rows": len(table), "md5": table_md5(table, ["id", "text", "label"]), **overlap},
        min_eval_rows=pcfg.min_eval_rows,
    )
    return decide(decision)


def already_champion(cfg: Config, name: str, version: str) -> Decision | None:
    """The decision for a retrain whose student is the champion's (same cache key, so the same
    registered version): nothing to gate, nothing moves. None when it is not the champion."""
    alias = cfg.promotion.champion_alias
    if model_registry.alias_version(name, alias) != version:
        return None
    return Decision(
        model=name,
        challenger=version,
        champion=version,
        alias=alias,
        metric=cfg.promotion.metric,
        challenger_score=None,
        champion_score=None,
        margin=None,
        min_margin=cfg.promotion.min_margin,
        floors={},
        eval_set={"source": "none", "rows": 0, "md5": ""},
        reasons=[f"the retrained student is {name}/{version}, already @{alias} (unchanged); nothing to gate"],
        unchanged=True,
    )


def trained_digests(version: Any) -> set[str] | None:
    """Text digests of the rows a version's run trained on or was selected on; None when the
    run predates that record."""
    run_id = model_registry.pipeline_run_id(version)
    if TRAINED_ROWS_FILE not in {a.path for a in client().list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return set(pd.read_parquet(client().download_artifacts(run_id, TRAINED_ROWS_FILE, tmp))["text_md5"])


def unseen_rows(table: pd.DataFrame, versions: list[Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The evaluation rows none of `versions` trained on, matched by text: rows appended to the
    data move the splits of later runs, and a champion must not be scored on its own training
    rows. Returns the rows kept and what was removed (and which versions had no record)."""
    seen: set[str] = set()
    unrecorded = []
    for v in versions:
        digests = trained_digests(v)
        if digests is None:
            unrecorded.append(str(v.version))
        else:
            seen |= digests
    keep = ~text_digests(table["text"]).isin(seen).to_numpy()
    info = {"excluded_trained_rows": int((~keep).sum()), "versions_without_row_record": unrecorded}
    return table[keep].reset_index(drop=True), info


def apply(decision: Decision) -> None:
    """Record the decision on the challenger version; on a pass, move the alias (re-checked).

    The alias moves last: every tag that explains it is written first, so a failure part-way
    leaves the champion where it was, never a moved champion without its record."""
    c = client()
    verdict = "promoted" if decision.promoted else "rejected"
    if decision.promoted:
        now = model_registry.alias_version(decision.model, decision.alias)
        if now != decision.champion:
            raise W2SError(f"@{decision.alias} moved to version {now} while the gate ran; run it again")
        c.set_model_version_tag(decision.model, decision.challenger, PREVIOUS_TAG, decision.champion or "none")
    reasons = "; ".join(decision.reasons)[:5000]
    c.set_model_version_tag(decision.model, decision.challenger, "promotion_reasons", reasons)
    c.set_model_version_tag(decision.model, decision.challenger, "promotion_decision", verdict)
    if decision.promoted:
        c.set_registered_model_alias(decision.model, decision.alias, decision.challenger)


def rollback(
    project: Project,
    name: str,
    alias: str = "champion",
    serialise: Callable[[Project, str], AbstractContextManager[None]] | None = None,
) -> tuple[str, str]:
    """Move `alias` back to the version it pointed at before the current one; return (from, to).
    Holds the same lock as a promotion, so it never interleaves with a gate or a gc."""
    c = client()
    if model_registry.alias_version(name, alias) is None:  # before the lock: a refusal writes nothing
        raise W2SError(f"registered model '{name}' has no @{alias} to roll back")
    with (serialise or promotion_lock)(project, name):
        current = model_registry.alias_version(name, alias)
        if current is None:
            raise W2SError(f"registered model '{name}' has no @{alias} to roll back")
        previous = c.get_model_version(name, current).tags.get(PREVIOUS_TAG, "none")
        if previous == "none":
            raise W2SError(f"{name}/{current} is the first @{alias}: there is no earlier version to roll back to")
        c.set_model_version_tag(name, current, "promotion_decision", f"rolled back to version {previous}")
        c.set_registered_model_alias(name, alias, previous)
    return current, previous


@contextmanager
def decision_run(decision: Decision) -> Iterator[str]:
    """Log the decision as a nested `promotion-gate` run under the challenger's pipeline run, and
    yield its id while the decision is applied: the record is written before anything moves, and
    the run ends FAILED (and says so) when applying fails."""
    version = client().get_model_version(decision.model, decision.challenger)
    with tracking.stage_run(model_registry.pipeline_run_id(version), "promotion-gate") as run:
        run.params(
            {
                "metric": decision.metric,
                "min_margin": decision.min_margin,
                "champion_before": decision.champion or "none",
                "eval_set": decision.eval_set,
                "floors": {k: f["floor"] for k, f in decision.floors.items()},
            }
        )
        run.metrics(
            {
                "challenger_score": decision.challenger_score,
                "champion_score": decision.champion_score,
                "margin": decision.margin,
            }
        )
        run.tags(
            {
                "promotion_decision": "promoted" if decision.promoted else "rejected",
                "model_version": f"{decision.model}/{decision.challenger}",
            }
        )
        run.dict(decision.as_dict(), "promotion.json")
        try:
            yield run.run_id
        except BaseException as exc:
            run.tags({"promotion_applied": f"no: {type(exc).__name__}: {exc}"[:5000]})
            raise
        run.tags({"promotion_applied": "yes"})


LOCK_TIMEOUT_S = 3600.0  # how long a promotion waits for another one of the same model


def safe_name(model: str) -> str:
    """A model name as a file or limit name (letters, digits, `-_.`)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)


@contextmanager
def promotion_lock(project: Project, model: str) -> Iterator[None]:
    """Hold the project's promotion lock of `model` (a file lock in the state folder): gates of the
    same model run one after the other, each against the champion the previous one left."""
    from filelock import FileLock, Timeout

    project.state.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(project.state / f"promotion-{safe_name(model)}.lock"), timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise W2SError(f"another promotion of '{model}' held the lock for {LOCK_TIMEOUT_S:.0f} s") from None


def promote(
    cfg: Config,
    project: Project,
    challenger_ref: str,
    splits_path: Path | None = None,
    serialise: Callable[[Project, str], AbstractContextManager[None]] = promotion_lock,
) -> Decision:
    """Run the gate, log its decision to MLflow, then apply it (the alias moves only on a pass,
    and only once the decision is on record).

    Gate, log and apply hold `serialise(project, model)` together (by default the project's file
    lock; the CLI and the flow add a Prefect global concurrency limit when a server is
    configured): without it, two promotions started at once would both score against the same
    champion and both pass; with it, the second one waits and is gated against whatever the
    first left as champion."""
    with serialise(project, model_registry.resolve_version(challenger_ref).name):
        decision = gate(cfg, project, challenger_ref, splits_path)
        _pause_for_fault_tests()
        with decision_run(decision):
            apply(decision)
    return decision


# Reliability testing: seconds to stay inside the critical section between the gate and applying
# its decision, so that a test's two racing promotions are sure to overlap.
PAUSE_ENV = "W2S_FAULT_PAUSE_IN_PROMOTION_S"


def _pause_for_fault_tests() -> None:
    import os
    import time

    if seconds := os.environ.get(PAUSE_ENV):
        time.sleep(float(seconds))

"""End-to-end figures: orchestration overhead, the cached re-run, a sweep sharing its weak model
and embeddings, peak memory, and how wall time grows with the transfer set. Every run is a
fresh process on a fresh project (a real git + DVC repository) with a cold cache, so nothing
measured reuses another measurement's work unless reuse is what is measured."""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.common import BIN, REPO, ProcessRun, bench_env, run_process

DATA = REPO / "data" / "election-tweets-2016.tab"


def default_params() -> dict[str, Any]:
    """The demo's configuration (the repository's params.yaml)."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


def with_split(params: dict[str, Any], **split: int) -> dict[str, Any]:
    """`params` with some split sizes replaced."""
    return {**params, "split": {**params["split"], **split}}


class Workspace:
    """Fresh projects under one folder, each with its own DVC remote, Prefect home and MLflow store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def project(self, params: dict[str, Any]) -> Path:
        from w2s.ops.scaffold import init_project

        self.count += 1
        name = f"p{self.count:02d}"
        return init_project(self.root / name, [DATA], params, self.root / f"{name}-remote")

    def env(self, project: Path) -> dict[str, str]:
        home = project.parent / f"{project.name}-prefect"
        home.mkdir(exist_ok=True)
        return bench_env(PREFECT_HOME=str(home))

    def flow(self, project: Path) -> ProcessRun:
        """`w2s run` in `project`: Prefect flow, GX gates, DVC versioning, MLflow runs and registry."""
        return run_process([str(BIN / "w2s"), "run"], project, self.env(project))

    def library(self, project: Path) -> ProcessRun:
        """The same steps straight from the library."""
        return run_process([sys.executable, "-m", "bench.library_run", str(project)], REPO, self.env(project))

    def sweep(self, project: Path, spec: dict[str, Any]) -> ProcessRun:
        path = project / "sweep.yaml"
        path.write_text(yaml.safe_dump(spec))
        return run_process([str(BIN / "w2s"), "sweep", "--config", str(path)], project, self.env(project))


def flow_metrics(project: Path) -> dict[str, Any]:
    """The metrics `w2s run` wrote (its DVC metrics file)."""
    return json.loads((project / "metrics.json").read_text())


def overhead(ws: Workspace, params: dict[str, Any], cached_repeats: int) -> dict[str, Any]:
    """Orchestrated vs library on the same config (cold caches), then unchanged re-runs of the
    orchestrated pipeline. Both must produce the same metrics or the comparison is void."""
    flow_project = ws.project(params)
    first = ws.flow(flow_project)
    lib = ws.library(ws.project(params))
    lib_metrics = json.loads(lib.output.strip().splitlines()[-1])["metrics"]
    flow_m = flow_metrics(flow_project)
    same = all(flow_m.get(k) == v for k, v in lib_metrics.items() if v is not None)
    reruns = [ws.flow(flow_project) for _ in range(cached_repeats)]
    rerun_s = statistics.median(r.seconds for r in reruns)
    return {
        "transfer": params["split"]["transfer"],
        "flow_seconds": first.seconds,
        "library_seconds": lib.seconds,
        "ratio": first.seconds / lib.seconds,
        "metrics_identical": same,
        "flow_peak_rss_mb": first.peak_rss_mb,
        "library_peak_rss_mb": lib.peak_rss_mb,
        "cached_rerun_seconds": [r.seconds for r in reruns],
        "cached_rerun_ratio": rerun_s / first.seconds,
    }


def scaling(ws: Workspace, params: dict[str, Any], sizes: list[int], known: dict[int, float]) -> dict[str, Any]:
    """Library wall time at several transfer sizes (cold caches); `known` holds sizes measured
    already. Reports seconds per size and the linear fit's slope and intercept."""
    import numpy as np

    seconds = dict(known)
    for size in sizes:
        if size not in seconds:
            seconds[size] = ws.library(ws.project(with_split(params, transfer=size))).seconds
    xs = np.array(sorted(seconds), dtype=float)
    ys = np.array([seconds[int(x)] for x in xs])
    slope, intercept = np.polyfit(xs, ys, 1)
    fit = slope * xs + intercept
    r2 = 1 - ((ys - fit) ** 2).sum() / max(((ys - ys.mean()) ** 2).sum(), 1e-12)
    return {
        "seconds": {str(int(x)): float(y) for x, y in zip(xs, ys, strict=True)},
        "seconds_per_1000_examples": float(slope * 1000),
        "fixed_seconds": float(intercept),
        "r2": float(r2),
    }


def shared_sweep(ws: Workspace, params: dict[str, Any], methods: list[str]) -> dict[str, Any]:
    """One `w2s sweep` over `methods` (one weak model, one ceiling, one embedding pass) against
    one `w2s run` per method, each on its own cold project."""
    spec = {
        "base": "params.yaml",
        "variants": {m: {"method": m} for m in methods},
        "grid": {"seed": [params["seed"]]},
    }  # one seed: the sweep's default grid has three
    swept = ws.sweep(ws.project(params), spec)
    alone = [ws.flow(ws.project({**params, "method": m})).seconds for m in methods]
    return {
        "methods": methods,
        "transfer": params["split"]["transfer"],
        "sweep_seconds": swept.seconds,
        "independent_seconds": alone,
        "ratio": swept.seconds / sum(alone),
    }


def measure(root: Path, quick: bool = False) -> dict[str, Any]:
    """Every end-to-end figure; `quick` shrinks the configs to check the benchmark itself runs."""
    if not DATA.is_file():
        raise FileNotFoundError(f"{DATA.relative_to(REPO)} is missing: run `w2s data fetch` (make data)")
    if root.exists():
        shutil.rmtree(root)
    ws = Workspace(root)
    params = default_params()
    small = with_split(params, transfer=300, val=100, test=300)
    if quick:
        params = with_split(params, transfer=200, val=80, test=200)
        params["strong"] = {**params["strong"], "epochs": 1, "max_length": 32}
        small = params
    head = overhead(ws, params, cached_repeats=1 if quick else 3)
    sizes = [params["split"]["transfer"] // 4, params["split"]["transfer"] // 2, params["split"]["transfer"]]
    grow = scaling(ws, params, sizes, {params["split"]["transfer"]: head["library_seconds"]})
    sweep = shared_sweep(ws, small, ["smooth", "selective", "corrector"])
    shutil.rmtree(root, ignore_errors=True)
    return {"overhead": head, "scaling": grow, "shared_sweep": sweep}

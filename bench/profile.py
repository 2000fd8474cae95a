"""Profile the demo pipeline once (pyinstrument, main thread) on a fresh project with a cold
cache, and split its wall time into model compute, imports and each orchestration component.

    python -m bench.profile [--out .w2s/bench] [--cached]

`--cached` profiles an unchanged second run instead, where nothing but orchestration is left.
Writes profile.html (the full call tree) and profile.json (the breakdown) to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import BIN, REPO, bench_env, run_process
from bench.pipeline import DATA, default_params

# Where a frame's file lives decides its category; the first match from the top wins.
CATEGORIES = (
    ("imports", ("<frozen importlib",)),
    ("model compute", ("/torch/", "/transformers/", "/tokenizers/", "/safetensors/")),
    ("Great Expectations", ("/great_expectations/",)),
    ("MLflow", ("/mlflow/",)),
    ("DVC", ("/dvc/", "/dvc_", "/scmrepo/")),
    ("Prefect", ("/prefect/",)),
    ("scikit-learn", ("/sklearn/",)),
    ("data (pandas, pyarrow)", ("/pandas/", "/pyarrow/")),
)


OURS = ("/w2s/", "/tasks/", "/flows/", "/cli/")


def categorise(frame: Any, current: str | None = None, out: Counter | None = None) -> Counter:
    """Seconds of own time per category. A library's callees stay in its category (MLflow
    serialising a model is MLflow's cost), except where our own code is called back (a Prefect
    task running our training is training); anything under an import is import time."""
    out = Counter() if out is None else out
    path = frame.file_path or ""
    if current != "imports":
        if any(k in path for k in OURS) and "site-packages" not in path:
            current = None
        elif current is None or "<frozen importlib" in path:
            current = next((name for name, keys in CATEGORIES if any(k in path for k in keys)), current)
    out[current or "w2s code and stdlib"] += frame.total_self_time  # includes its synthetic [self] children
    for child in frame.children:
        if not child.is_synthetic:
            categorise(child, current, out)
    return out


def profile(out: Path, cached: bool) -> dict[str, Any]:
    """Run `w2s run` under pyinstrument in a fresh project; return the category breakdown."""
    from pyinstrument.session import Session

    from w2s.ops.scaffold import init_project

    scratch = out / "profile-project"
    shutil.rmtree(scratch, ignore_errors=True)
    project = init_project(scratch / "p", [DATA], default_params(), scratch / "remote")
    env = bench_env(PREFECT_HOME=str(scratch / "prefect"))
    cmd = [
        str(BIN / "pyinstrument"),
        "-r",
        "pyisession",
        "-o",
        str(out / "profile.pyisession"),
        "--from-path",
        "w2s",
        "run",
    ]
    if cached:
        run_process([str(BIN / "w2s"), "run"], project, env)
    run = run_process(cmd, project, env)
    session = Session.load(str(out / "profile.pyisession"))
    from pyinstrument.renderers import HTMLRenderer

    (out / "profile.html").write_text(HTMLRenderer().render(session))
    split = categorise(session.root_frame())
    total = sum(split.values())
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "cached": cached,
        "wall_seconds": run.seconds,
        "profiled_seconds": total,
        "seconds": {k: round(v, 2) for k, v in split.most_common()},
        "share": {k: round(v / total, 3) for k, v in split.most_common()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".w2s" / "bench")
    parser.add_argument("--cached", action="store_true", help="profile an unchanged second run")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = profile(args.out, args.cached)
    name = "profile-cached.json" if args.cached else "profile.json"
    (args.out / name).write_text(json.dumps(result, indent=2))
    print(
        f"{'cached re-run' if args.cached else 'demo'}: {result['wall_seconds']:.0f} s wall, "
        f"{result['profiled_seconds']:.0f} s in the main thread"
    )
    for k, v in result["seconds"].items():
        print(f"  {k:<24} {v:7.1f} s  {result['share'][k]:6.1%}")
    print(f"call tree: {args.out / 'profile.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

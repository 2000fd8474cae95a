"""Record in the seed ledger the seeds of the sweeps that ran before it existed:

    python -m tools.backfill_seed_ledger configs/sweep-*.yaml

For each sweep config, every version git holds of it is expanded (on the base config of the same
commit, and on today's, when they validate) and the union of its seeds per testbed becomes one
exploratory entry, dated and stamped with the config's last commit. Over-inclusive on purpose:
a seed that may have been used counts as used, so no later confirmatory sweep can take it. A
config already in the ledger is skipped, so a rerun adds nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTE = "declared after the fact from every committed version of the config: the sweep ran before the seed ledger"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def _seeds(spec_text: str, base_text: str | None, settings: dict[str, Any]) -> dict[str, set[int]]:
    """Seeds per testbed of one version of a sweep config on one version of its base (and each
    testbed's settings, into `settings`)."""
    import tempfile

    from w2s.errors import W2SError
    from w2s.pipeline.seed_ledger import testbed
    from w2s.pipeline.sweep_grid import SweepConfig, expand

    out: dict[str, set[int]] = {}
    try:
        spec = SweepConfig.model_validate(yaml.safe_load(spec_text) or {})
        with tempfile.TemporaryDirectory() as tmp:
            if spec.base and base_text is not None:
                (Path(tmp) / spec.base).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / spec.base).write_text(base_text)
            root = Path(tmp) if base_text is not None else ROOT
            for _, cfg in expand(spec, root):
                key, settings[key] = testbed(cfg)
                out.setdefault(key, set()).add(cfg.seed)
    except (W2SError, ValueError):  # a version today's schema no longer reads
        pass
    return out


def entry(config: str) -> dict[str, Any] | None:
    """The ledger entry of one config's whole history, or None when no version expands."""
    commits = _git("log", "--format=%H %cI", "--", config).split("\n")
    seeds: dict[str, set[int]] = {}
    settings: dict[str, Any] = {}
    for line in filter(None, commits):
        commit = line.split()[0]
        text = _git("show", f"{commit}:{config}")
        base = yaml.safe_load(text or "{}").get("base", "params.yaml") if text else None
        then = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{base}"], capture_output=True, text=True)
        for version in ((then.stdout if then.returncode == 0 else None), None):
            for key, found in _seeds(text, version, settings).items():
                seeds.setdefault(key, set()).update(found)
    if not seeds:
        return None
    last, date = commits[0].split()
    return {
        "sweep": f"before-ledger:{Path(config).stem}",
        "config": config,
        "commit": last,
        "uncommitted": [],
        "tree_dirty": False,
        "confirmatory": False,
        "seeds": {k: sorted(v) for k, v in sorted(seeds.items())},
        "testbeds": {k: settings[k] for k in sorted(seeds)},
        "date": date.replace("+00:00", "Z"),
        "note": NOTE,
    }


def main(configs: list[str]) -> int:
    from w2s.pipeline.seed_ledger import read_ledger, write_ledger
    from w2s.project import Project

    project = Project(ROOT)
    ledger = read_ledger(project)
    known = {e["config"] for e in ledger["sweeps"]}
    for config in configs:
        rel = Path(config).resolve().relative_to(ROOT).as_posix()
        if rel in known:
            continue
        found = entry(rel)
        if found is None:
            print(f"{rel}: no committed version expands; skipped", file=sys.stderr)
            continue
        ledger["sweeps"].append(found)
        print(f"{rel}: {', '.join(f'{k} {v}' for k, v in found['seeds'].items())}")
    write_ledger(project, ledger)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Re-run a registered model's recorded config on its recorded data version, and compare."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from w2s.errors import W2SError
from w2s.ops.lineage import fetch_data
from w2s.project import Project

# Identity of what the run consumed and produced: must match exactly, whatever the tolerance.
IDENTITY_TAGS = ("data_md5", "weak_labels_md5", "student_labels_md5")


def prepare(info: dict[str, Any], project: Project, scratch: Path) -> dict[str, Any]:
    """Lay out a scratch project holding the recorded data version; return the config to run."""
    if info["params"] is None:
        raise W2SError(f"{info['model']}: its run recorded no config.json, so it cannot be re-run exactly")
    fetch_data(info, project, scratch)
    config = dict(info["params"])
    config["registry"] = {**config.get("registry", {}), "enabled": False}  # a reproduction registers nothing
    return config


def compare(recorded: dict[str, Any], reproduced: dict[str, Any], tolerance: float) -> tuple[list[dict], bool]:
    """Rows of (name, recorded, reproduced, delta, ok) for every metric and identity hash."""
    rows = []
    for name in sorted(set(recorded["metrics"]) | set(reproduced["metrics"])):
        a, b = recorded["metrics"].get(name), reproduced["metrics"].get(name)
        if a is None and b is None:
            continue
        delta = None if a is None or b is None else b - a
        ok = delta is not None and math.isfinite(delta) and abs(delta) <= tolerance
        rows.append({"name": name, "recorded": a, "reproduced": b, "delta": delta, "ok": ok})
    for name in IDENTITY_TAGS:
        a, b = recorded["tags"].get(name), reproduced["tags"].get(name)
        rows.append({"name": name, "recorded": a, "reproduced": b, "delta": None, "ok": a == b and a is not None})
    return rows, all(r["ok"] for r in rows)

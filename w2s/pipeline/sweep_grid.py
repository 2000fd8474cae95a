"""Sweep configuration: a grid of config overrides expanded into runnable points."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from w2s.config import Config, load_config, read_yaml_file
from w2s.errors import ConfigError


class SweepConfig(BaseModel):
    """What to sweep: every combination of the `grid` values, on top of a base config."""

    model_config = ConfigDict(extra="forbid")

    base: str | None = Field("params.yaml", description="Config every point starts from (relative to the project).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="`key: value` applied to every point.")
    grid: dict[str, list[Any]] = Field(
        default_factory=lambda: {"seed": [0, 1, 2]},
        description="`key: [values]`; the sweep runs the cartesian product. Seeds are aggregated.",
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named override sets swept as one more grid axis, `variant` (for methods "
        "that differ in several keys, e.g. `bootstrap: {method: bootstrap}`).",
    )
    when: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Extra overrides for points where a grid key has a value, keyed `key=value`, "
        "e.g. `data.name=reuters-r8: {strong.max_length: 128}`.",
    )
    baseline: dict[str, Any] | None = Field(
        None,
        description="The configuration every other one is compared with, paired by seed (95% "
        "t-interval of the difference): the axes it sets and their values, the other axes equal, "
        "e.g. `{variant: xent}`. Unset: the `naive` variant if there is one, else `method: "
        "naive` if `method` is an axis with that value, else no comparison.",
    )
    max_workers: int = Field(1, ge=1, description="Points run at once (CPU training: keep 1 per machine).")
    runner: Literal["threads", "dask"] = Field(
        "threads",
        description="threads: points run in this process; dask: on a Dask cluster through "
        "prefect-dask (a local one with max_workers worker processes unless dask_address is set).",
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (runner=dask)."
    )
    confirmatory: bool = Field(
        False,
        description="Declare the sweep confirmatory: it may use only seeds that no earlier sweep in "
        "the seed ledger (results/seed-ledger.json) used on the same testbed, and its config file "
        "and base config must be committed to git; otherwise it is refused before any point runs. "
        "Every sweep, confirmatory or not, records its seeds and its config's commit in the ledger.",
    )

    @property
    def axes(self) -> dict[str, list[Any]]:
        """The grid with the variants (if any) as a leading `variant` axis."""
        return ({"variant": list(self.variants)} if self.variants else {}) | self.grid

    @model_validator(mode="after")
    def _baseline_on_the_grid(self) -> SweepConfig:
        for key, value in (self.baseline or {}).items():
            if key not in self.axes:
                raise ValueError(f"baseline key '{key}' is not a grid axis (axes: {', '.join(self.axes)})")
            if value not in self.axes[key]:
                raise ValueError(f"baseline {key}={value} is not among the values of '{key}': {self.axes[key]}")
        return self

    @property
    def comparison_baseline(self) -> dict[str, Any]:
        """`baseline`, or the baseline method's configuration when the grid has one (see
        `baseline`; `w2s.methods.BASELINE` names the method)."""
        from w2s.methods import BASELINE

        if self.baseline is not None:
            return self.baseline
        for axis in ("variant", "method"):
            if BASELINE in self.axes.get(axis, []):
                return {axis: BASELINE}
        return {}

    @property
    def group_keys(self) -> list[str]:
        """Axes that define a configuration (all but the seed)."""
        return [k for k in self.axes if k != "seed"]


def sweep_name(sweep_config: dict[str, Any]) -> str:
    """A new sweep's name (its folder under the state folder, its entry in the seed ledger):
    the start time and a hash of its config."""
    from datetime import UTC, datetime

    from w2s.core.config import stable_hash

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"sweep-{stamp}-{stable_hash(sweep_config)[:6]}"


def load_sweep(path: str | Path) -> SweepConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep config not found: {p}")
    raw = read_yaml_file(p, "sweep config")
    try:
        return SweepConfig.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"sweep config {p}: key '{loc}': {first['msg']}") from None


def _fmt(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def expand(sweep: SweepConfig, project_root: Path) -> list[tuple[dict[str, Any], Config]]:
    """Every grid point as (its grid values, its validated config); bad points fail up front."""
    base = None
    if sweep.base:
        base = project_root / sweep.base
    axes = sweep.axes
    points = []
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values, strict=True))
        sets = [f"{k}={_fmt(v)}" for k, v in sweep.overrides.items()]
        for k, v in point.items():
            overrides = sweep.variants[v] if k == "variant" else {k: v}
            sets += [f"{ok}={_fmt(ov)}" for ok, ov in overrides.items()]
        for k, v in point.items():
            sets += [f"{ek}={_fmt(ev)}" for ek, ev in sweep.when.get(f"{k}={v}", {}).items()]
        points.append((point, load_config(base, sets)))
    return points

"""W2S methods: one module per method, each a `Method` (see `base.py`), found by `all_methods()`.

A module here defines `METHOD = <its Method subclass>`; a plugin package registers its class
under the `w2s.methods` entry-point group instead. Adding a method is one module with its
settings model and hooks, and its test: the config's `method` choices, its section in
`params.yaml`, the flow, the library runner and the DVC stages all follow from the registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from w2s.core.metric_schema import Metric
    from w2s.methods.base import Method

ENTRY_POINT_GROUP = "w2s.methods"
# The default method and the baseline every comparison is made against (sweeps pair each
# configuration with it unless told otherwise).
BASELINE = "naive"
# The protocol every method implements: the one module here that is not a method.
_HELPERS = {"base"}


@cache
def all_methods() -> dict[str, type[Method]]:
    """Every known method by name: this package's modules first, then installed plugins."""
    from w2s.methods.base import Method

    found: dict[str, type[Method]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _HELPERS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        method = getattr(module, "METHOD", None)
        if method is None:
            raise TypeError(f"w2s/methods/{info.name}.py defines no METHOD")
        found[method.name] = method
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        method = ep.load()
        if not (isinstance(method, type) and issubclass(method, Method)):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a w2s Method subclass")
        if method.name in found:
            raise TypeError(f"method '{method.name}' from {ep.value} is already registered")
        found[method.name] = method
    # the baseline first: it is the default and what every comparison is made against
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != BASELINE, kv[0])))


def get(name: str) -> type[Method]:
    """The method class registered under `name`."""
    methods = all_methods()
    if name not in methods:
        raise KeyError(f"unknown method '{name}' (known: {', '.join(methods)})")
    return methods[name]


def all_metrics() -> tuple[Metric, ...]:
    """Every declared metric: the core ones (`w2s.core.metric_schema.METRICS`) and each registered
    method's own (`Method.declared_metrics`)."""
    from w2s.core import metric_schema

    # A method that subclasses another inherits its declarations: the same Metric, listed once.
    seen: dict[str, Metric] = {}
    for m in metric_schema.METRICS + tuple(m for method in all_methods().values() for m in method.declared_metrics):
        if seen.setdefault(m.name, m) != m:
            raise TypeError(f"metric '{m.name}' is declared twice, differently")
    return tuple(seen.values())

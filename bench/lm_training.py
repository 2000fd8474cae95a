"""LM training throughput: the w2s trainer against the HF `Trainer` + peft on the same tiny
Qwen2-style decoder (randomly initialised, built here from a config with a BPE tokenizer trained
on the bundled tweets), the same tweets and labels, the same LoRA adapters (rank, alpha, dropout,
target projections), batch size, learning rate, weight decay, warm-up + cosine schedule and
gradient clipping, one epoch, fp32 on a CPU (`measure(device="cuda", precision="bf16")`: the same
contest on a GPU in bf16, as `bench/gpu_check.py --sections hf` runs it).

Tokens/s counts real (non-pad) tokens: the texts' token lengths, the same for every contender.
Each contender's time includes its own tokenisation (and, for the HF `Trainer`, building it);
loading the model is outside the time. Repeats are interleaved (one of each contender per round),
so drift on a shared machine hits all of them alike; the figure is the median. Also, for
information, the w2s trainer in bf16 (autocast, frozen base held in bf16) against fp32 on this
CPU, with the training loss of both.
"""

from __future__ import annotations

import contextlib
import functools
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO
from bench.training import hf_rows

# The decoder: ~3M weights outside the embeddings, a 4k BPE vocabulary, no truncation of tweets.
LM = {"family": "qwen2", "hidden": 256, "layers": 4, "heads": 8, "vocab_size": 4000, "max_positions": 256}
LORA = {"r": 8, "alpha": 16.0, "dropout": 0.05}
LR = 2e-4
WEIGHT_DECAY = 0.01
WARMUP = 0.1


def tweets(n: int, data_dir: Path | None = None) -> tuple[list[str], np.ndarray, int]:
    """The first `n` bundled election tweets (texts, integer labels, number of classes)."""
    from w2s.core.data.bundled import load_corpus

    table = load_corpus("election-tweets", data_dir or REPO / "data").iloc[:n]
    names = sorted(table["label"].unique())
    return table["text"].tolist(), table["label"].map(names.index).to_numpy(), len(names)


def build_lm(folder: Path, texts: list[str], **overrides: Any) -> Path:
    """A randomly initialised Qwen2-style decoder and its tokenizer (trained on `texts`), saved
    with `save_pretrained` into `folder`."""
    from w2s.core.models.tiny import build_tiny_lm, train_tokenizer

    spec = {**LM, **overrides}
    tokenizer = train_tokenizer(texts, spec.pop("vocab_size"))
    return build_tiny_lm(folder, texts, tokenizer=tokenizer, **spec)


def _w2s_config(model_dir: Path, bs: int, max_len: int, precision: str = "fp32") -> Any:
    from w2s.core.config import EncoderTrainConfig

    return EncoderTrainConfig(
        model=str(model_dir),
        lora=dict(LORA),
        precision=precision,
        max_length=max_len,
        batch_size=bs,
        epochs=1,
        lr=LR,
        weight_decay=WEIGHT_DECAY,
        warmup_frac=WARMUP,
    )


class _Counted:
    """An `Encoded` that counts the (padded) tokens of the batches taken from it."""

    def __init__(self, enc: Any) -> None:
        self.enc, self.padded = enc, 0

    def __len__(self) -> int:
        return len(self.enc)

    @property
    def lengths(self) -> np.ndarray:
        return self.enc.lengths

    def batch(self, idx: Any) -> Any:
        ids, mask = self.enc.batch(idx)
        self.padded += ids.numel()
        return ids, mask


def w2s_contender(precision: str) -> tuple[Callable[..., Any], Callable[..., dict[str, Any]]]:
    """(prepare, run): the pipeline's classifier (`build_classifier`, LoRA, last-token pooling)
    and trainer (tokenise once, length-grouped batches, dynamic padding, fused AdamW)."""

    def prepare(model_dir: Path, k: int, bs: int, max_len: int) -> tuple[Any, ...]:
        from w2s.core.models.classifier import build_classifier

        cfg = _w2s_config(model_dir, bs, max_len, precision)
        tokenizer, model = build_classifier(cfg, k, seed=0)
        return cfg, tokenizer, model

    def run(texts: list[str], y: np.ndarray, k: int, cfg: Any, tokenizer: Any, model: Any) -> dict[str, Any]:
        from w2s.core.losses import xent
        from w2s.core.models.batching import encode
        from w2s.core.train import train

        losses: list[Any] = []

        def recorded(logits, targets, frac):
            loss = xent(logits, targets, frac)
            losses.append(loss.detach())
            return loss

        enc = _Counted(encode(tokenizer, texts, cfg.max_length))
        train(model, enc, np.eye(k, dtype=np.float32)[y], cfg, 0, recorded)
        return {
            "losses": [float(v) for v in losses],
            "real_tokens": int(enc.lengths.sum()),
            "padded_tokens": enc.padded,
        }

    return prepare, run


def hf_contender(
    group_by_length: bool, device: str = "cpu", precision: str = "fp32"
) -> tuple[Callable[..., Any], Callable[..., dict[str, Any]]]:
    """(prepare, run): what a user of the HF stack writes: `AutoModelForSequenceClassification`
    (its own last-non-pad-token pooling) with peft LoRA (`task_type="SEQ_CLS"`, so the score head
    trains too), the `Trainer` with `DataCollatorWithPadding`, its default sampler (or
    `train_sampling_strategy="group_by_length"`) and default optimizer (fused AdamW), no
    evaluation, saving or logging, the data loader in the main process. In bf16 the base is
    loaded in bf16 and the `Trainer` autocasts (`bf16=True`), as w2s holds a LoRA base."""
    return (
        functools.partial(_hf_prepare, precision=precision),
        functools.partial(_hf_run, group_by_length=group_by_length, device=device, precision=precision),
    )


def _hf_prepare(model_dir: Path, k: int, bs: int, max_len: int, precision: str) -> tuple[Any, ...]:
    """The HF model with its peft LoRA adapters (the same projections as w2s) and its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from w2s.core.models.arch import lora_targets

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.eos_token  # decoders ship without one
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialised" is the point
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    try:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=k, dtype=dtype)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    lora = LoraConfig(
        task_type="SEQ_CLS",
        r=int(LORA["r"]),
        lora_alpha=int(LORA["alpha"]),
        lora_dropout=LORA["dropout"],
        target_modules=lora_targets(model.config, "auto"),
        bias="none",
    )
    return tokenizer, get_peft_model(model, lora), bs, max_len


def _hf_run(
    texts: list[str],
    y: np.ndarray,
    k: int,
    tokenizer: Any,
    model: Any,
    bs: int,
    max_len: int,
    group_by_length: bool,
    device: str,
    precision: str,
) -> dict[str, Any]:
    """One epoch of the `Trainer`: its mean loss, and the real and padded tokens it saw."""
    from transformers import DataCollatorWithPadding, Trainer

    del k
    collator = DataCollatorWithPadding(tokenizer)
    padded = 0

    def collate(features):  # counts the tokens it pads to; the batch is the collator's own
        nonlocal padded
        batch = collator(features)
        padded += batch["input_ids"].numel()
        return batch

    rows = hf_rows(tokenizer, texts, y, max_len)
    with tempfile.TemporaryDirectory() as out:
        args = _hf_arguments(out, bs, group_by_length, device, precision)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its own metrics dict
            result = trainer.train()
    real = sum(len(row["input_ids"]) for row in rows)
    return {"mean_loss": float(result.training_loss), "real_tokens": real, "padded_tokens": padded}


def _hf_arguments(out: str, bs: int, group_by_length: bool, device: str, precision: str) -> Any:
    """The `Trainer`'s arguments: the same schedule as w2s, nothing but training."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=bs,
        num_train_epochs=1,
        learning_rate=LR,
        weight_decay=WEIGHT_DECAY,
        warmup_steps=WARMUP,
        lr_scheduler_type="cosine",
        max_grad_norm=1.0,
        report_to=[],
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        dataloader_num_workers=0,
        seed=0,
        label_names=["labels"],
        train_sampling_strategy="group_by_length" if group_by_length else "random",
    )


def contender_table(device: str = "cpu", precision: str = "fp32") -> dict[str, Any]:
    """The contenders by name, in `precision` on `device` (the w2s trainer takes the GPU when
    there is one, as the pipeline does); "w2s trainer bf16" is the CPU table's extra row."""
    return {
        "w2s trainer": w2s_contender(precision),
        "HF Trainer + peft": hf_contender(False, device, precision),
        "HF Trainer + peft (group_by_length)": hf_contender(True, device, precision),
        "w2s trainer bf16": w2s_contender("bf16"),
    }


CONTENDERS = contender_table()


def cpu_pressure() -> float | None:
    """Linux's 5-minute CPU pressure (% of time some runnable task waited for a CPU): how much
    other work shared the machine while the figures were taken (None where not available)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split("avg300=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _preload() -> None:
    """Import what the contenders import, so no contender's first repeat pays for it."""
    import peft  # noqa: F401
    import transformers  # noqa: F401
    from transformers import Trainer  # noqa: F401

    import w2s.core.train  # noqa: F401


def measure(
    n: int = 1024,
    bs: int = 32,
    max_len: int = 128,
    repeats: int = 3,
    contenders: list[str] | None = None,
    lm: dict[str, Any] | None = None,
    data_dir: Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Real tokens/s and examples/s of each contender (median of `repeats` interleaved epochs over
    `n` tweets). Every contender must have trained on the same real tokens, or no figure is given.
    `lm`: overrides of the decoder's size (`LM`); `device`, `precision`: where and how both train."""
    import torch
    from transformers import AutoTokenizer

    from w2s.core.models.batching import encode
    from w2s.core.models.classifier import build_classifier, trainable_parameters

    table = contender_table(device, precision)
    names = contenders or list(table)
    texts, y, k = tweets(n, data_dir)
    spec = {**LM, **(lm or {})}
    _preload()
    pressure = cpu_pressure()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        all_texts, _, _ = tweets(10**6, data_dir)  # the tokenizer is trained on the whole corpus
        model_dir = build_lm(Path(tmp) / "lm", all_texts, **spec)
        enc = encode(AutoTokenizer.from_pretrained(model_dir), texts, max_len)
        trainable, total = trainable_parameters(build_classifier(_w2s_config(model_dir, bs, max_len), k, 0)[1])
        for round_ in range(repeats):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotated order
                prepare, run = table[name]
                with warnings.catch_warnings():  # transformers' deprecation notices to itself (peft)
                    warnings.simplefilter("ignore", FutureWarning)
                    args = prepare(model_dir, k, bs, max_len)
                    start, start_cpu = time.perf_counter(), time.process_time()
                    last[name] = run(texts, y, k, *args)
                    seconds[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
                print(f"[lm_training] round {round_ + 1}/{repeats} {name}: {seconds[name][-1]:.1f} s", flush=True)
                del args
    real = int(enc.lengths.sum())
    counted = {name: last[name]["real_tokens"] for name in names}
    if set(counted.values()) != {real}:
        raise RuntimeError(f"contenders trained on different tokens ({counted}; expected {real})")
    out: dict[str, Any] = {
        "examples": n,
        "batch_size": bs,
        "max_length": max_len,
        "truncated": enc.truncated,
        "model": {**spec, "parameters": total, "trainable_w2s": trainable},
        "lora": LORA,
        "lr": LR,
        "device": device,
        "precision": precision,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "real_tokens": real,
        "cpu_pressure_avg300": {"before": pressure, "after": cpu_pressure()},
    }
    out["contenders"] = {name: _entry(seconds[name], cpu[name], last[name], real, n) for name in names}
    return out


def _entry(seconds: list[float], cpu: list[float], info: dict[str, Any], real: int, n: int) -> dict[str, Any]:
    """One contender's figures: the median epoch's rates, its padding and its losses."""
    med = statistics.median(seconds)
    entry: dict[str, Any] = {
        "seconds": [round(s, 3) for s in seconds],
        "cpu_seconds": [round(s, 3) for s in cpu],
        "tokens_per_s": real / med,
        "examples_per_s": n / med,
        "padded_tokens": info["padded_tokens"],
        "pad_fraction": 1 - real / info["padded_tokens"],
    }
    if "losses" in info:
        losses = info["losses"]
        entry["mean_loss"] = float(np.mean(losses))
        entry["final_loss"] = float(np.mean(losses[-max(1, len(losses) // 4) :]))  # last quarter of the epoch
    else:
        entry["mean_loss"] = info["mean_loss"]
    return entry

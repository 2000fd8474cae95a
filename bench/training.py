"""Training throughput: the w2s strong trainer against a minimal plain PyTorch loop and the HF
`Trainer`, on the same model, texts, labels, batch size and number of examples. Each contender
starts from the same pretrained weights and its time includes its own tokenisation."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import REPO, padded_tokens, timed

MODEL = "minilm-l6"


def tweets(n: int, offset: int = 0) -> tuple[list[str], np.ndarray, int]:
    """`n` bundled election tweets (texts, integer labels, number of classes)."""
    from w2s.core.data.bundled import load_corpus

    table = load_corpus("election-tweets", REPO / "data").iloc[offset : offset + n]
    names = sorted(table["label"].unique())
    return table["text"].tolist(), table["label"].map(names.index).to_numpy(), len(names)


def w2s_trainer(texts: list[str], y: np.ndarray, k: int, tokenizer, model, bs: int, max_len: int) -> None:
    """The pipeline's trainer: tokenise once, length-grouped batches, dynamic padding."""
    from w2s.core.config import EncoderTrainConfig
    from w2s.core.losses import xent
    from w2s.core.models.batching import encode
    from w2s.core.train import train

    cfg = EncoderTrainConfig(model=MODEL, max_length=max_len, epochs=1, batch_size=bs)
    enc = encode(tokenizer, texts, max_len)
    train(model, enc, np.eye(k, dtype=np.float32)[y], cfg, 0, xent)


def plain_loop(texts: list[str], y: np.ndarray, k: int, tokenizer, model, bs: int, max_len: int) -> None:
    """What one writes by hand: shuffled batches, tokenised per batch with padding to the batch."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    order = np.random.default_rng(0).permutation(len(texts))
    for start in range(0, len(order), bs):
        idx = order[start : start + bs]
        tok = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        loss = F.cross_entropy(model(tok["input_ids"], tok["attention_mask"]), torch.as_tensor(y[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def hf_rows(tokenizer, texts: list[str], y: np.ndarray, max_len: int) -> list[dict[str, Any]]:
    """Tokenised examples as HF `Trainer` reads them (unpadded; its collator pads each batch)."""
    enc = tokenizer(texts, truncation=True, max_length=max_len)
    return [
        {"input_ids": ids, "attention_mask": m, "labels": int(lab)}
        for ids, m, lab in zip(enc["input_ids"], enc["attention_mask"], y, strict=True)
    ]


def hf_trainer(group_by_length: bool) -> Callable[..., None]:
    """The HF `Trainer` with its dynamic-padding collator; length grouping is its own lever
    (`train_sampling_strategy="group_by_length"`)."""

    def run(texts: list[str], y: np.ndarray, k: int, tokenizer, model, bs: int, max_len: int) -> None:
        import torch
        import torch.nn.functional as F
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

        class WithLoss(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, input_ids, attention_mask, labels=None):
                logits = self.inner(input_ids, attention_mask)
                return {"loss": F.cross_entropy(logits, labels), "logits": logits}

        rows = hf_rows(tokenizer, texts, y, max_len)
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=bs,
                num_train_epochs=1,
                learning_rate=5e-5,
                report_to=[],
                save_strategy="no",
                logging_strategy="no",
                disable_tqdm=True,
                use_cpu=True,
                dataloader_num_workers=0,
                seed=0,
                train_sampling_strategy="group_by_length" if group_by_length else "random",
            )
            trainer = Trainer(
                model=WithLoss(), args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer)
            )
            with contextlib.redirect_stdout(io.StringIO()):  # it prints its own metrics dict
                trainer.train()

    return run


CONTENDERS: dict[str, Callable[..., None]] = {
    "w2s trainer": w2s_trainer,
    "plain PyTorch loop": plain_loop,
    "HF Trainer": hf_trainer(False),
    "HF Trainer (group_by_length)": hf_trainer(True),
}


def trained_tokens(texts: list[str], tokenizer, bs: int, max_len: int) -> dict[str, int]:
    """Real and padded tokens (and batches) the w2s trainer processes in one epoch, in its own
    batch order."""
    from w2s.core.models.batching import encode, length_grouped_batches

    lengths = encode(tokenizer, texts, max_len).lengths
    batches = length_grouped_batches(lengths, bs, np.random.default_rng(0))
    return {"real": int(lengths.sum()), "padded": padded_tokens(lengths, batches), "batches": len(batches)}


def training_flops(model, tokens: int, seq_len: float) -> float:
    """Forward + backward FLOPs for `tokens` tokens: 6 per non-embedding weight per token, plus
    attention scores and mixing (12 * layers * seq_len * hidden per token)."""
    cfg = model.encoder.config
    dense = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return tokens * (6 * dense + 12 * cfg.num_hidden_layers * seq_len * cfg.hidden_size)


def measure(n: int = 1024, bs: int = 32, max_len: int = 64, repeats: int = 3) -> dict[str, Any]:
    """Examples/s of each contender (median of `repeats` epochs over `n` tweets) and the w2s
    trainer's achieved FLOP/s."""
    import copy

    from w2s.core.config import EncoderTrainConfig
    from w2s.core.models.classifier import build_classifier

    texts, y, k = tweets(n)
    tokenizer, base = build_classifier(EncoderTrainConfig(model=MODEL), k, seed=0)
    out: dict[str, Any] = {
        "examples": n,
        "batch_size": bs,
        "max_length": max_len,
        "model": MODEL,
        "repeats": repeats,
        "contenders": {},
    }
    for name, fn in CONTENDERS.items():
        t = timed(fn, repeats, prepare=lambda: (texts, y, k, tokenizer, copy.deepcopy(base), bs, max_len))
        out["contenders"][name] = {"seconds": t.seconds, "examples_per_s": n / t.median}
    tokens = trained_tokens(texts, tokenizer, bs, max_len)
    seq = tokens["padded"] / n  # mean padded length of a row
    seconds = n / out["contenders"]["w2s trainer"]["examples_per_s"]
    out["tokens"] = tokens
    out["w2s_gflops"] = training_flops(base, tokens["padded"], seq) / seconds / 1e9
    return out

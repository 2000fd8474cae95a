"""The standard weak-to-strong task suite: each task's hub id, which hub splits feed our table, and
the formatter that turns its real schema into binary `text, label` rows.

The formatters follow the two reference implementations, named on each: openai/weak-to-strong
(`weak_to_strong/datasets.py`) and EleutherAI/w2s (`w2s/ds_registry.py`), with their text
templates verbatim and `label` the reference's `hard_label` ("1" / "0", so class index 1 is the
positive class as there). One deliberate difference: where a reference draws, per item, either the
correct candidate (label 1) or one wrong candidate (label 0) with a seeded coin, we keep both as a
pair of rows sharing a `pair` key (`w2s.core.data.items`), so the classes are balanced by
construction and splitting keeps the pair together. The wrong candidate is drawn by a hash of the
item's own text, not a seed, so the table (and its md5) is the same for every run seed.

The hub splits of a task are pooled: our own splits (weak_train, transfer, val, test) are drawn
from the pool, as EleutherAI does for sciq.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from w2s.core.data.items import PAIR
from w2s.errors import DataError

# A formatter maps one hub split (positional index) to rows `item, text, label`, `item` being
# the position of the source item the row was built from.
Formatter = Callable[[pd.DataFrame], pd.DataFrame]

OPENAI = "openai/weak-to-strong weak_to_strong/datasets.py"
ELEUTHER = "EleutherAI/w2s w2s/ds_registry.py"


@dataclass(frozen=True)
class Task:
    """A named task: where it lives on the hub, the splits pooled into our table, the fields its
    formatter reads, and whether each source item yields a pair of rows."""

    hub_id: str
    splits: tuple[str, ...]
    fields: tuple[str, ...]
    formatter: Formatter
    paired: bool
    reference: str
    description: str
    config: str | None = None


def _text(v: Any) -> str:
    """A field as text; a missing value is empty rather than the string 'None'."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _pick(options: Sequence[str], key: str) -> str:
    """One of `options`, chosen by a hash of `key`: stable across runs, seeds and row order."""
    return options[int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % len(options)]


def _single(items: Iterable[int], texts: Iterable[str], labels: Iterable[int]) -> pd.DataFrame:
    return pd.DataFrame({"item": list(items), "text": list(texts), "label": [str(int(v)) for v in labels]})


def _pairs(triples: Iterable[tuple[int, str, str]]) -> pd.DataFrame:
    """Rows from `(item, correct text, wrong text)`: the correct one labelled 1, the wrong one 0.

    An item whose two texts coincide is skipped: one text would carry both labels.
    """
    rows = []
    for item, right, wrong in triples:
        if right != wrong:
            rows += [(item, right, "1"), (item, wrong, "0")]
    return pd.DataFrame(rows, columns=["item", "text", "label"])


def _int_labels(values: pd.Series, task: str, field: str) -> pd.Series:
    try:
        return pd.to_numeric(values, errors="raise").astype(int)
    except (TypeError, ValueError):
        sample = next((v for v in values if not isinstance(v, (int, float))), values.iloc[0])
        raise DataError(f"{task}: field '{field}' must hold integer class ids (got {sample!r})") from None


def amazon_polarity(df: pd.DataFrame) -> pd.DataFrame:
    """Title and review; positive (1) or negative (0). OpenAI/EleutherAI `format_amazon_polarity`."""
    label = _int_labels(df["label"], "amazon_polarity", "label")
    keep = label.isin([0, 1])
    text = df["title"].map(_text) + " " + df["content"].map(_text)
    return _single(df.index[keep], text[keep], label[keep])


def boolq(df: pd.DataFrame) -> pd.DataFrame:
    """Passage and a yes/no question; the answer. OpenAI/EleutherAI `format_boolq`."""
    if not pd.api.types.is_bool_dtype(df["answer"]):
        raise DataError(f"boolq: field 'answer' must hold booleans (got {df['answer'].dtype} values)")
    text = "Passage: " + df["passage"].map(_text) + "\nQuestion: " + df["question"].map(_text)
    return _single(df.index, text, df["answer"].astype(int))


def anli(df: pd.DataFrame) -> pd.DataFrame:
    """Premise and hypothesis; does the premise entail it (label 0, entailment, is 1; neutral and
    contradiction are 0). EleutherAI `format_anli`."""
    label = _int_labels(df["label"], "anli-r2", "label")
    keep = label >= 0  # -1 marks an unlabelled row
    text = (
        "Premise: "
        + df["premise"].map(_text)
        + "\nHypothesis: "
        + df["hypothesis"].map(_text)
        + "\n\nDoes the premise entail the hypothesis?"
    )
    return _single(df.index[keep], text[keep], (label[keep] == 0).astype(int))


def sciq(df: pd.DataFrame) -> pd.DataFrame:
    """Question and candidate answer: the correct answer (1) and one distractor (0), without the
    support paragraph, as the reference `sciq` task. OpenAI/EleutherAI `format_sciq`."""

    def triples() -> Iterable[tuple[int, str, str]]:
        for i, q, right, *wrong in zip(
            df.index,
            df["question"],
            df["correct_answer"],
            df["distractor1"],
            df["distractor2"],
            df["distractor3"],
            strict=True,
        ):
            q, right = _text(q), _text(right)
            yield i, f"Q: {q} A: {right}", f"Q: {q} A: {_pick([_text(w) for w in wrong], q + right)}"

    return _pairs(triples())


def sciq_with_support(df: pd.DataFrame) -> pd.DataFrame:
    """sciq with its support paragraph. EleutherAI `format_sciq_with_support` (template from
    EleutherAI/elk-generalization)."""

    def say(support: str, question: str, answer: str) -> str:
        return f'Name: Bob\n\nPassage 1:\n{support}\n\nQ1: "{question}" Is the answer "{answer}"?'

    def triples() -> Iterable[tuple[int, str, str]]:
        for i, s, q, right, *wrong in zip(
            df.index,
            df["support"],
            df["question"],
            df["correct_answer"],
            df["distractor1"],
            df["distractor2"],
            df["distractor3"],
            strict=True,
        ):
            s, q, right = _text(s), _text(q), _text(right)
            yield i, say(s, q, right), say(s, q, _pick([_text(w) for w in wrong], q + right))

    return _pairs(triples())


COSMOS_NONE = "None of the above choices ."


def cosmos_qa(df: pd.DataFrame) -> pd.DataFrame:
    """Context, question and candidate answer: the true answer (1) and another candidate (0).
    OpenAI `format_cosmosqa`. Items whose true answer is "None of the above choices ." are
    skipped: the reference never shows that answer as correct (it only ever turns such an item
    into a negative), so the item has no positive row to pair."""
    labels = _int_labels(df["label"], "cosmos_qa", "label")

    def triples() -> Iterable[tuple[int, str, str]]:
        answers = zip(df["answer0"], df["answer1"], df["answer2"], df["answer3"], strict=True)
        for i, ctx, q, label, four in zip(df.index, df["context"], df["question"], labels, answers, strict=True):
            if not 0 <= label < 4:  # -1 marks the unlabelled test split
                continue
            cands = [_text(a) for a in four]
            right = cands[label]
            wrong = [a for a in cands if a != right]
            if COSMOS_NONE in right or not wrong:
                continue
            ctx, q = _text(ctx), _text(q)
            head = f"Context: {ctx}\nQuestion: {q}\nAnswer: "
            yield i, head + right, head + _pick(wrong, ctx + q)

    return _pairs(triples())


def anthropic_hh(df: pd.DataFrame) -> pd.DataFrame:
    """A whole transcript: the chosen one (1) and the rejected one (0) of each comparison.
    OpenAI/EleutherAI `format_anthropic_hh`."""
    return _pairs(zip(df.index, df["chosen"].map(_text), df["rejected"].map(_text), strict=True))


def hellaswag(df: pd.DataFrame) -> pd.DataFrame:
    """Context, all endings, and one ending asked about: the true ending (1) and another (0).
    EleutherAI `format_hellaswag`."""

    def say(ctx: str, endings: list[str], ans: str) -> str:
        joined = "\n".join(endings)
        return f'Context:\n{ctx}\n\nContinuations:\n\n{joined}\n\nQ: Is "{ans}" the best continuation?'

    def triples() -> Iterable[tuple[int, str, str]]:
        for i, ctx, endings, label in zip(df.index, df["ctx"], df["endings"], df["label"], strict=True):
            if _text(label).strip() == "":  # the test split is unlabelled
                continue
            ends = [_text(e) for e in endings]
            right = int(label)
            wrong = [e for j, e in enumerate(ends) if j != right]
            if not wrong:
                continue
            ctx = _text(ctx)
            yield i, say(ctx, ends, ends[right]), say(ctx, ends, _pick(wrong, ctx + ends[right]))

    return _pairs(triples())


TASKS: dict[str, Task] = {
    "sciq": Task(
        "allenai/sciq",
        ("train", "validation", "test"),
        ("question", "correct_answer", "distractor1", "distractor2", "distractor3"),
        sciq,
        True,
        f"{OPENAI} format_sciq; {ELEUTHER} format_sciq (all splits pooled)",
        "SciQ science questions: is this the answer? Pairs. 13.7k items.",
    ),
    "sciq_with_support": Task(
        "allenai/sciq",
        ("train", "validation", "test"),
        ("support", "question", "correct_answer", "distractor1", "distractor2", "distractor3"),
        sciq_with_support,
        True,
        f"{ELEUTHER} format_sciq_with_support",
        "SciQ with its support paragraph. Pairs. 13.7k items.",
    ),
    "boolq": Task(
        "google/boolq",
        ("train", "validation"),
        ("question", "passage", "answer"),
        boolq,
        False,
        f"{OPENAI} format_boolq (test = validation)",
        "BoolQ yes/no questions about a passage. 12.7k.",
    ),
    "cosmos_qa": Task(
        "allenai/cosmos_qa",
        ("train", "validation"),
        ("context", "question", "answer0", "answer1", "answer2", "answer3", "label"),
        cosmos_qa,
        True,
        f"{OPENAI} format_cosmosqa (test = validation; the hub test split is unlabelled)",
        "Cosmos QA commonsense reading comprehension: is this the answer? Pairs. 28k items.",
    ),
    "anli-r2": Task(
        "facebook/anli",
        ("train_r2", "test_r2"),
        ("premise", "hypothesis", "label"),
        anli,
        False,
        f"{ELEUTHER} format_anli (train = train_r2, test = test_r2)",
        "Adversarial NLI round 2: does the premise entail the hypothesis? 46.5k, ~1/3 positive.",
    ),
    "amazon_polarity": Task(
        "fancyzhx/amazon_polarity",
        ("train", "test"),
        ("title", "content", "label"),
        amazon_polarity,
        False,
        f"{OPENAI} format_amazon_polarity",
        "Amazon review polarity. 4M (set data.max_rows).",
    ),
    "anthropic_hh": Task(
        "Anthropic/hh-rlhf",
        ("train", "test"),
        ("chosen", "rejected"),
        anthropic_hh,
        True,
        f"{OPENAI} format_anthropic_hh",
        "Anthropic HH-RLHF: is this the preferred transcript? Pairs. 169k items.",
    ),
    "hellaswag": Task(
        "Rowan/hellaswag",
        ("train", "validation"),
        ("ctx", "endings", "label"),
        hellaswag,
        True,
        f"{ELEUTHER} format_hellaswag (test = validation; the hub test split is unlabelled)",
        "HellaSwag: is this the best continuation? Pairs. 50k items.",
    ),
}


def task(name: str) -> Task:
    """Look up a task by name, with a clear error listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task '{name}' (known: {', '.join(TASKS)})") from None


def format_splits(name: str, spec: Task, splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The canonical table `id, text, label, group, pair` of a task's hub splits.

    Ids are `<hub split>-<position>` (plus `-<label>` for the two rows of a pair); the pair key
    is the item's id. A split missing a field the formatter reads is a one-line error naming it.
    """
    frames = []
    for split, frame in splits.items():
        missing = [f for f in spec.fields if f not in frame.columns]
        if missing:
            have = ", ".join(map(str, frame.columns))
            raise DataError(f"{name}: the data has no field '{missing[0]}' (columns: {have})")
        try:
            rows = spec.formatter(frame.reset_index(drop=True))
        except (TypeError, ValueError, IndexError) as exc:  # a field of the right name but another shape
            raise DataError(f"{name}: cannot format hub split '{split}': {exc}") from None
        key = split + "-" + rows["item"].map("{:07d}".format)
        frames.append(
            pd.DataFrame(
                {
                    "id": key + "-" + rows["label"] if spec.paired else key,
                    "text": rows["text"],
                    "label": rows["label"],
                    "group": None,
                    PAIR: key if spec.paired else None,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)

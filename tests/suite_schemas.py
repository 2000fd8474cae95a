"""Small tables in each standard task's real hub schema (field names, order and types as on the
hub), written the way the hub or `save_to_disk` would, for the unit tests of the formatters and the
end-to-end runs of a task through the pipeline."""

from __future__ import annotations

from pathlib import Path

from w2s.core.data import suite


def features(name: str):
    import datasets

    s = datasets.Value("string")
    return {
        "sciq": datasets.Features(
            {
                "question": s,
                "distractor3": s,
                "distractor1": s,
                "distractor2": s,
                "correct_answer": s,
                "support": s,
            }
        ),
        "boolq": datasets.Features({"question": s, "answer": datasets.Value("bool"), "passage": s}),
        "cosmos_qa": datasets.Features(
            {
                "id": s,
                "context": s,
                "question": s,
                "answer0": s,
                "answer1": s,
                "answer2": s,
                "answer3": s,
                "label": datasets.Value("int32"),
            }
        ),
        "anli": datasets.Features(
            {
                "uid": s,
                "premise": s,
                "hypothesis": s,
                "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                "reason": s,
            }
        ),
        "amazon_polarity": datasets.Features(
            {"label": datasets.ClassLabel(names=["negative", "positive"]), "title": s, "content": s}
        ),
        "hh": datasets.Features({"chosen": s, "rejected": s}),
        "hellaswag": datasets.Features(
            {
                "ind": datasets.Value("int32"),
                "activity_label": s,
                "ctx_a": s,
                "ctx_b": s,
                "ctx": s,
                "endings": datasets.Sequence(s),
                "source_id": s,
                "split": s,
                "split_type": s,
                "label": s,
            }
        ),
    }[name]


def sciq(split: str, n: int) -> list[dict]:
    return [
        {
            "question": f"{split} question {i}: what carries charge?",
            "distractor3": f"neutron {i}",
            "distractor1": f"photon {i}",
            "distractor2": f"neutrino {i}",
            "correct_answer": f"electron {i}",
            "support": f"Support paragraph {split} {i} about electrons.",
        }
        for i in range(n)
    ]


def boolq(split: str, n: int) -> list[dict]:
    return [
        {"question": f"is {split} fact {i} true", "answer": i % 3 != 0, "passage": f"Passage {split} {i}."}
        for i in range(n)
    ]


def cosmos(split: str, n: int, labelled: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        answers = [f"{split} answer {i}.{k}" for k in range(4)]
        label = i % 4
        if i % 10 == 9:  # the true answer is "None of the above": the reference never shows it as correct
            answers[label] = suite.COSMOS_NONE
        elif i % 5 == 2:  # "None of the above" as a wrong candidate is an ordinary distractor
            answers[(label + 1) % 4] = suite.COSMOS_NONE
        rows.append(
            {
                "id": f"{split}##{i}",
                "context": f"Context {split} {i}.",
                "question": f"Why {split} {i}?",
                **{f"answer{k}": a for k, a in enumerate(answers)},
                "label": label if labelled else -1,
            }
        )
    return rows


def anli(split: str, n: int) -> list[dict]:
    return [
        {
            "uid": f"{split}-{i}",
            "premise": f"Premise {split} {i}.",
            "hypothesis": f"Hypothesis {split} {i}.",
            "label": i % 3,
            "reason": "",
        }
        for i in range(n)
    ]


def amazon(split: str, n: int) -> list[dict]:
    return [{"label": i % 2, "title": f"Title {split} {i}", "content": f"Review {split} {i}."} for i in range(n)]


def hh(split: str, n: int) -> list[dict]:
    head = "\n\nHuman: question {s} {i}\n\nAssistant:"
    return [
        {"chosen": head.format(s=split, i=i) + f" helpful {i}", "rejected": head.format(s=split, i=i) + f" rude {i}"}
        for i in range(n)
    ]


def hellaswag(split: str, n: int, labelled: bool = True) -> list[dict]:
    return [
        {
            "ind": i,
            "activity_label": "Cooking",
            "ctx_a": f"A cook {i}",
            "ctx_b": "then",
            "ctx": f"A cook {split} {i} then",
            "endings": [f"ending {split} {i}.{k}" for k in range(4)],
            "source_id": f"src-{i}",
            "split": split,
            "split_type": "indomain",
            "label": str(i % 4) if labelled else "",
        }
        for i in range(n)
    ]


# task name -> (schema, {hub split: (rows builder, rows, labelled)}); extra splits the task must not
# read are included
LAYOUT = {
    "sciq": ("sciq", {"train": (sciq, 30), "validation": (sciq, 6), "test": (sciq, 6)}),
    "sciq_with_support": ("sciq", {"train": (sciq, 20), "validation": (sciq, 5), "test": (sciq, 5)}),
    "boolq": ("boolq", {"train": (boolq, 30), "validation": (boolq, 10)}),
    "cosmos_qa": ("cosmos_qa", {"train": (cosmos, 30), "validation": (cosmos, 10), "test": (cosmos, 8, False)}),
    "anli-r2": (
        "anli",
        {"train_r1": (anli, 5), "train_r2": (anli, 36), "dev_r2": (anli, 6), "test_r2": (anli, 9)},
    ),
    "amazon_polarity": ("amazon_polarity", {"train": (amazon, 40), "test": (amazon, 10)}),
    "anthropic_hh": ("hh", {"train": (hh, 30), "test": (hh, 10)}),
    "hellaswag": (
        "hellaswag",
        {"train": (hellaswag, 30), "validation": (hellaswag, 8), "test": (hellaswag, 5, False)},
    ),
}


def records(task: str, scale: int = 1) -> tuple[str, dict[str, list[dict]]]:
    """The task's schema name and its records per hub split, `scale` times the default size."""
    schema, splits = LAYOUT[task]
    return schema, {split: build(split, n * scale, *rest) for split, (build, n, *rest) in splits.items()}


FIXTURES = {task: records(task) for task in LAYOUT}


def dataset_dict(task: str, scale: int = 1):
    """The task's records as a `datasets.DatasetDict` with the hub's features."""
    import datasets

    schema, splits = records(task, scale)
    return datasets.DatasetDict(
        {s: datasets.Dataset.from_list(rows, features=features(schema)) for s, rows in splits.items()}
    )


def save_task(task: str, root: Path, layout: str, scale: int = 1) -> str:
    """Write the task's records under `root` the way `save_to_disk` ("disk") or the hub ("parquet")
    would; return the folder's name, for `data.hf_name`."""
    dd = dataset_dict(task, scale)
    folder = root / f"{task}-{layout}"
    if layout == "disk":
        dd.save_to_disk(str(folder))
    else:  # the hub's own layout: data/<split>-00000-of-00001.parquet
        (folder / "data").mkdir(parents=True)
        for split, ds in dd.items():
            ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder.name

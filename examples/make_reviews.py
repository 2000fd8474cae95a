"""Write examples/reviews.csv: 600 short product reviews in a user's own schema (`review_id`,
`body`, `stars` as `pos` / `neg`), generated from templates with a fixed seed. Made up, so it can
ship with the repository; its negations ("not great") and mixed reviews make a bag-of-words weak
model trained on a few labels miss what a pretrained sentence encoder trained on many gets.

    python examples/make_reviews.py                                   # the shipped file (seed 7)
    python examples/make_reviews.py --seed 8 --out data/reviews.csv   # a new batch, for retraining
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PRODUCTS = ["kettle", "blender", "lamp", "backpack", "headphones", "chair", "toaster", "jacket", "router", "tent"]
GOOD = ["great", "excellent", "sturdy", "comfortable", "reliable", "quiet", "well made", "worth every penny"]
BAD = ["flimsy", "noisy", "broken", "uncomfortable", "unreliable", "cheaply made", "a waste of money", "useless"]
PRAISE = ["I would buy it again.", "Five stars from me.", "Highly recommended.", "My family loves it."]
COMPLAINT = ["I returned it.", "One star.", "Avoid this one.", "Customer service never replied."]
NEUTRAL = [
    "It arrived on Tuesday.",
    "I use it every day.",
    "Bought it for my sister.",
    "The box was blue.",
    "Delivery took a week.",
    "It came with a manual.",
    "I got it on sale.",
    "We have had it a month.",
]


def _ending(rng: random.Random, positive: bool) -> str:
    """Mostly a neutral remark; sometimes a verdict that gives the label away."""
    if rng.random() < 0.7:
        return rng.choice(NEUTRAL)
    return rng.choice(PRAISE if positive else COMPLAINT)


def review(rng: random.Random, positive: bool) -> str:
    product = rng.choice(PRODUCTS)
    kind = rng.random()
    if kind < 0.5:  # plain
        word = rng.choice(GOOD if positive else BAD)
        return f"The {product} is {word}. {_ending(rng, positive)}"
    if kind < 0.8:  # negated: the opposite word carries the sentiment's sign
        word = rng.choice(BAD if positive else GOOD)
        return f"Honestly the {product} is not {word} at all. {_ending(rng, positive)}"
    # mixed: a complaint and a verdict; the verdict decides
    first = rng.choice(BAD if positive else GOOD)
    verdict = "Overall I am happy with it." if positive else "Overall I regret buying it."
    return f"The {product} looked {first} at first. {verdict}"


OUT = Path(__file__).with_name("reviews.csv")


def main(path: Path = OUT, n: int = 600, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review_id", "body", "stars"])
        for i in range(n):
            positive = rng.random() < 0.5
            writer.writerow([f"r{i:04d}", review(rng, positive), "pos" if positive else "neg"])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write made-up product reviews as a CSV.")
    parser.add_argument("--out", type=Path, default=OUT, help="the CSV to write (default examples/reviews.csv)")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    main(args.out, args.rows, args.seed)

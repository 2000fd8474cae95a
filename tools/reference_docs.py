"""Reference pages generated from the code, so they cannot drift from it:

    python -m tools.reference_docs write   # regenerate docs/metrics.md and docs/config.md
    python -m tools.reference_docs check   # exit 1 when a committed page differs (a test runs it)

docs/metrics.md is the metric schema (`w2s.core.metric_schema.METRICS`, with every registered
method's own metrics) as a table; docs/config.md every key of the typed config
(`w2s.config_docs.reference_markdown`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def metrics_page() -> str:
    """docs/metrics.md: every metric a run can report."""
    from w2s.core.metric_schema import reference_table
    from w2s.methods import all_metrics

    return "\n".join(
        [
            "# Metrics",
            "",
            "Every number a run writes to `metrics.json` and logs to MLflow, generated from the metric schema",
            "(`w2s/core/metric_schema.py`, and each method's `declared_metrics`) by",
            "`python -m tools.reference_docs write`; a test keeps this page equal to it.",
            "",
            "- **also `_ood`**: with `split.ood_groups`, the same metric on the held-out groups, as `<name>_ood`.",
            "- **averaged over seeds**: a sweep reports its mean and standard error (`<name>_mean`, `<name>_se`).",
            "  PGR is instead computed from the seed-averaged accuracies, with a confidence interval.",
            "- **promotion floor**: `promotion.floors` may name it (`{pgr: 0.2}`).",
            "",
            reference_table(all_metrics()),
            "",
        ]
    )


def config_page() -> str:
    """docs/config.md: every key of params.yaml."""
    from w2s.config_docs import reference_markdown

    return reference_markdown() + "\n"


PAGES: dict[str, Callable[[], str]] = {"docs/metrics.md": metrics_page, "docs/config.md": config_page}


def main(argv: list[str]) -> int:
    if argv not in (["write"], ["check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for rel, build in PAGES.items():
        path, text = ROOT / rel, build()
        if argv == ["write"]:
            path.write_text(text)
        elif not path.is_file() or path.read_text() != text:
            stale.append(rel)
    for rel in stale:
        print(f"{rel} is out of date: run `python -m tools.reference_docs write`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The reference pages generated from the code are committed as generated."""

from __future__ import annotations

from tools import reference_docs


def test_every_generated_reference_page_is_current():
    for rel, build in reference_docs.PAGES.items():
        assert (reference_docs.ROOT / rel).read_text() == build(), f"run `python -m tools.reference_docs write` ({rel})"

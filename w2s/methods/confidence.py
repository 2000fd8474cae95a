"""The confidence gate: the baseline that Selective W2S's P(IK) probe has to beat. The strong
head's own label where its confidence is at least tau, the weak label elsewhere; the same
machinery and settings (`selective`) as `method: selective`."""

from __future__ import annotations

from w2s.methods.selective import Gate


class Confidence(Gate):
    name = "confidence"
    summary = "baseline gate: the strong model's own label where its head's confidence passes tau"
    reads = ("selective", "smooth")
    gate = "confidence"


METHOD = Confidence

"""Naive weak-to-strong training (Burns et al. 2023): the student learns the weak labels as they
are, with whichever `strong.loss` is configured (xent, the auxiliary confidence loss, product)."""

from __future__ import annotations

from w2s.methods.base import Method


class Naive(Method):
    name = "naive"
    summary = "the student learns the weak labels directly (any strong.loss)"


METHOD = Naive

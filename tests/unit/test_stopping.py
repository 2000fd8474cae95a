"""The stop scope: a termination signal leaving the code that owns a thread pool stops the
training and prediction loops running in the pool's threads at their next batch.
(Through a real `w2s sweep` and SIGTERM: tests/e2e/test_faults.py.)"""

from __future__ import annotations

import contextvars
import copy
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch

from w2s.core import stopping
from w2s.core.config import EncoderTrainConfig
from w2s.core.losses import xent
from w2s.core.models.batching import encode, predict_logits
from w2s.core.train import train


class _Signal(BaseException):
    """Stands in for Prefect's TerminationSignal (a BaseException, not an Exception)."""


def _in_thread(fn: Callable[[], object], context: contextvars.Context | None) -> BaseException | None:
    """Run `fn` in a new thread (in `context` if given, as a pool copying its submitter's context
    does) and return what it raised."""
    raised: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=(lambda: context.run(body)) if context else body)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_a_signal_leaving_the_scope_stops_the_threads_started_inside_it_and_no_others():
    stopping.check()  # outside any scope: nothing to stop
    with pytest.raises(_Signal), stopping.scope():
        inside = contextvars.copy_context()
        raise _Signal
    assert isinstance(_in_thread(stopping.check, inside), stopping.Stopped)
    assert _in_thread(stopping.check, None) is None, "a thread without the scope's context runs on"
    stopping.check()  # the scope is closed in the thread that opened it


def test_an_ordinary_failure_leaving_the_scope_lets_the_other_threads_finish():
    with pytest.raises(ValueError), stopping.scope():
        inside = contextvars.copy_context()
        raise ValueError("one point failed")
    assert _in_thread(stopping.check, inside) is None


def test_training_and_prediction_stop_at_their_next_batch_once_the_scope_is_told(minilm_2layer):
    tokenizer, shared = minilm_2layer
    model = copy.deepcopy(shared)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    texts = [f"great wonderful movie {i}" for i in range(16)] + [f"awful terrible film {i}" for i in range(16)]
    y = np.array([1] * 16 + [0] * 16)
    enc = encode(tokenizer, texts, 16)
    cfg = EncoderTrainConfig(epochs=2, batch_size=8, lr=3e-4)
    with stopping.scope() as told:
        predict_logits(model, enc, 8)  # runs while the scope has not been told
        told.set()
        with pytest.raises(stopping.Stopped):
            train(model, enc, np.eye(2, dtype=np.float32)[y], cfg, 0, xent)
        with pytest.raises(stopping.Stopped):
            predict_logits(model, enc, 8)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "no step was taken"

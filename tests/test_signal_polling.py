"""While a run trains, a signal is raised at the next batch end, not from its handler.

A handler's raise lands wherever the interpreter happens to be; once in CI that was inside
TensorFlow's tensor conversion during `fit`, and the process died with SIGSEGV instead of
unwinding with 130. These tests send real signals to this process and check where the
exception comes from: the handler only records it while training, the batch-end callback
(or the end of the training block) raises it, and a second signal is not held back.
"""

from __future__ import annotations

import os
import signal
import traceback

import pytest

from catsdogs.dataset.pipeline import load_splits
from catsdogs.dataset.synthetic import ensure_synthetic
from catsdogs.training import runner
from catsdogs.training.train import TrainConfig, train_run


@pytest.fixture(autouse=True)
def signal_handlers():
    """Install the runner's handlers for one test and put the previous ones back."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    runner.install_signal_handlers()
    yield
    runner._raised.clear()
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _send(sig: int = signal.SIGTERM) -> None:
    """A real signal to this process; CPython runs the handler before the next bytecode."""
    os.kill(os.getpid(), sig)


def test_a_signal_while_training_waits_for_the_end_of_the_block():
    reached = []
    with pytest.raises(runner.Interrupted):
        with runner._signals_polled():
            _send()
            reached.append("after the signal")  # the handler returned: nothing raised here
    assert reached == ["after the signal"]
    assert runner._raised == []  # raised once, not left to be raised again


def test_a_failure_beside_a_waiting_signal_is_an_interruption_not_a_failed_run():
    with pytest.raises(runner.Interrupted) as caught:
        with runner._signals_polled():
            _send()
            raise ValueError("the run failed after the signal")
    assert isinstance(caught.value.__context__, ValueError)


def test_a_second_signal_is_raised_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with runner._signals_polled():
            _send(signal.SIGTERM)
            reached.append("first held")
            _send(signal.SIGINT)
            reached.append("second held too")  # must not be reached
    assert reached == ["first held"]


def test_outside_training_a_signal_raises_from_the_handler():
    with pytest.raises(runner.Interrupted) as caught:
        _send()
    assert traceback.extract_tb(caught.value.__traceback__)[-1].name == "handler"


def test_during_fit_the_batch_end_callback_raises_the_signal():
    """A real `fit` on the synthetic set (labelled synthetic): the signal sent at the end of
    the first batch comes out of `raise_swallowed_signal`, called by Keras, one batch later
    at most, and the run does not go on to its other epochs."""
    import keras

    splits = load_splits(ensure_synthetic(), seed=0, limit=32)
    assert splits.dataset == "synthetic"
    batches = []

    def send_once(batch, logs=None):
        batches.append(batch)
        if len(batches) == 1:
            _send()

    sender = keras.callbacks.LambdaCallback(on_train_batch_end=send_once)
    with pytest.raises(runner.Interrupted) as caught:
        with runner._signals_polled():
            train_run("model1", splits, seed=0, config=TrainConfig(epochs=5),
                      extra_callbacks=(sender, runner.signal_callback()))
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "raise_swallowed_signal", frames
    assert "handler" not in frames
    assert len(batches) == 1  # raised at that same batch end, by the callback after it

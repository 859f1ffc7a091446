"""Time each training epoch as one pytest-benchmark round, while the run trains as usual.

Why: a whole training run as one round mixes tracing into the only sample, so
pytest-benchmark's statistics (and `--benchmark-compare-fail`) judged noise. Keras trains
all epochs inside one `model.fit`, so a round cannot simply call "one epoch". Instead the
run trains in the calling (main) thread, exactly as `catsdogs run` trains it (same
recording, same signal handling), and a stopwatch thread drives `benchmark.pedantic`:

- pedantic's untimed `setup` waits until the run stands at the start of the next epoch
  (the previous epoch's validation pass is over);
- the timed target lets that epoch go and returns when its training steps end (when
  Keras starts the validation pass, or the epoch ends if there is none).

So one round is one epoch's training steps, the span of epochs.csv's `train_s` plus a
thread hand-off of microseconds; the first epoch (tracing) is pedantic's warm-up round.
If the run stops early (failure, divergence, interruption) the gate opens for good and
the stopwatch ends with `RunEnded`, so nothing waits forever.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class RunEnded(RuntimeError):
    """The run stopped before the stopwatch had all its rounds."""


class EpochGate:
    """Hands epochs between the training thread and the stopwatch thread."""

    _POLL_S = 0.2  # waits wake up this often, so Ctrl-C reaches the main thread

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._at_start = False  # the run waits at an epoch's start
        self._go = False  # the stopwatch released that epoch
        self._trained = False  # that epoch's training steps are over
        self._open = False  # no more gating: the run ended or the stopwatch stopped

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._cond:
            while not (ready() or self._open):
                self._cond.wait(self._POLL_S)

    def _set(self, **flags: bool) -> None:
        with self._cond:
            for name, value in flags.items():
                setattr(self, "_" + name, value)
            self._cond.notify_all()

    # -- training thread (Keras callback)
    def epoch_begin(self) -> None:
        """Wait here until the stopwatch starts timing this epoch."""
        self._set(at_start=True)
        self._wait(lambda: self._go)
        self._set(at_start=False, go=False)

    def training_done(self) -> None:
        """This epoch's training steps are over (idempotent within an epoch)."""
        self._set(trained=True)

    def open(self) -> None:
        """Stop gating: the run goes on (or has ended) at its own pace."""
        self._set(open=True)

    # -- stopwatch thread (pedantic)
    def setup(self) -> None:
        """pedantic's untimed setup: wait until the run stands at an epoch's start."""
        self._wait(lambda: self._at_start)
        if self._open:
            raise RunEnded("the run ended before this round")

    def one_epoch(self) -> None:
        """pedantic's timed target: release one epoch and wait for its training steps."""
        self._set(trained=False, go=True)
        self._wait(lambda: self._trained)
        if self._open and not self._trained:
            raise RunEnded("the run ended during this round")

    def keras_callback(self):
        """The callback that gates a fit (Keras imported only here)."""
        from catsdogs.backend import keras_module

        keras = keras_module()

        gate = self

        class _Gate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                gate.epoch_begin()

            def on_test_begin(self, logs=None):
                gate.training_done()

            def on_epoch_end(self, epoch, logs=None):
                gate.training_done()

            def on_train_end(self, logs=None):
                gate.open()

        return _Gate()


def rounds_for(epochs: int) -> tuple[int, int]:
    """(rounds, warm-up rounds): every epoch after the first is a round; a one-epoch run
    has only its first epoch, which is then the round (tracing included)."""
    return (epochs - 1, 1) if epochs > 1 else (1, 0)


def stopwatch(benchmark: Any, gate: EpochGate, epochs: int) -> tuple[threading.Thread, list]:
    """Start pedantic in a thread; the returned list receives its exception, if any."""
    rounds, warmup = rounds_for(epochs)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            benchmark.pedantic(gate.one_epoch, setup=gate.setup, rounds=rounds,
                               warmup_rounds=warmup, iterations=1)
        except BaseException as exc:  # handed to the test's thread, which reports it
            errors.append(exc)
        finally:
            gate.open()

    thread = threading.Thread(target=run, name="catsdogs-stopwatch", daemon=True)
    thread.start()
    return thread, errors

"""The ETA arithmetic, the plain-line reporter and the epoch gate, without training."""

from __future__ import annotations

import io
import threading
import time

import pytest

from catsdogs.progress import (
    LineReporter,
    LiveReporter,
    MatrixClock,
    format_duration,
    make_reporter,
)
from catsdogs.training.epoch_rounds import EpochGate, RunEnded, rounds_for


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (None, 4.4, 59.6, 190, 3600 + 5 * 60 + 9)] == [
        "?", "4s", "1m00s", "3m10s", "1h05m"]


def test_eta_leaves_out_the_first_epoch_of_each_run():
    clock = MatrixClock([("model1", 0), ("model1", 1)], epochs=4)
    clock.start_run(0)
    clock.finish_epoch(30.0)  # tracing
    assert clock.eta_run() is None  # nothing but a first epoch seen: no honest estimate
    clock.finish_epoch(2.0)
    clock.finish_epoch(4.0)
    assert clock.eta_run() == pytest.approx(3.0)  # one epoch left at the median, 3 s
    # The next run: its first epoch at the first-epoch estimate, then three at 3 s.
    assert clock.eta_matrix() == pytest.approx(3.0 + 30.0 + 3 * 3.0)
    assert clock.eta_matrix(elapsed_in_epoch=1.0) == pytest.approx(2.0 + 30.0 + 9.0)


def test_an_unseen_variant_borrows_the_epochs_seen_so_far():
    clock = MatrixClock([("model1", 0), ("model4", 0)], epochs=2)
    clock.start_run(0)
    clock.finish_epoch(10.0)
    clock.finish_epoch(5.0)
    assert clock.eta_run() == 0.0
    assert clock.eta_matrix() == pytest.approx(5.0 + 5.0)  # model4 at model1's pace
    clock.start_run(1)
    clock.finish_epoch(50.0)
    assert clock.eta_run() == pytest.approx(5.0)  # its later epochs are not seen yet


def test_one_epoch_runs_are_estimated_from_first_epochs():
    clock = MatrixClock([("model1", 0), ("model1", 1), ("model1", 2)], epochs=1)
    clock.start_run(0)
    clock.finish_epoch(8.0)
    assert clock.eta_matrix() == pytest.approx(16.0)


def test_a_log_gets_one_plain_line_per_epoch_with_the_eta():
    stream = io.StringIO()
    reporter = make_reporter(stream, environ={})
    assert isinstance(reporter, LineReporter)  # a StringIO is no terminal
    reporter.start_session([("baseline_cnn", 0), ("baseline_cnn", 1)], epochs=2)
    reporter.start_run("baseline_cnn", 0)
    for epoch in range(2):
        reporter.epoch_begin(epoch, steps=3)
        reporter.step_end(1, 3)
        reporter.epoch_end(epoch, {"loss": 0.5, "accuracy": 0.75})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/2] baseline_cnn seed 0, 2 epochs"
    assert lines[1].startswith("  epoch   1/2  loss 0.5000  acc 0.7500")
    assert lines[1].endswith("ETA run ?, matrix ?")
    assert lines[2].endswith("ETA run 0s, matrix 0s") and len(lines) == 3
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_counts_report_every_tenth_with_an_eta():
    stream = io.StringIO()
    count = LineReporter(stream).counter("download", "bytes")
    for done in range(0, 68_606_237, 1_000_000):
        count(done, 68_606_236)
    count(68_606_236, 68_606_236)
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 11, lines
    assert lines[0].startswith("download: 0.0 MB of 68.6 MB, ETA")
    assert lines[-1].startswith("download: 68.6 MB done in")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("environ", "live"), [({}, True), ({"CI": "true"}, False),
                                                ({"TERM": "dumb"}, False)])
def test_live_only_on_a_terminal_outside_ci(environ, live):
    assert isinstance(make_reporter(_Tty(), environ=environ), LiveReporter) is live


def _train(gate: EpochGate, epochs: int, train_s: float, validate_s: float) -> None:
    """What a fit does to the gate's callback, with sleeps standing in for the work."""
    for _ in range(epochs):
        gate.epoch_begin()
        time.sleep(train_s)
        gate.training_done()  # Keras starts the validation pass
        time.sleep(validate_s)
    gate.open()  # on_train_end


def test_the_gate_times_the_training_steps_of_each_epoch_not_validation():
    gate, measured = EpochGate(), []

    def stopwatch():  # what pedantic does: untimed setup, then the timed target
        rounds, warmup = rounds_for(4)
        for _ in range(rounds + warmup):
            gate.setup()
            start = time.perf_counter()
            gate.one_epoch()
            measured.append(time.perf_counter() - start)

    thread = threading.Thread(target=stopwatch)
    thread.start()
    _train(gate, epochs=4, train_s=0.05, validate_s=0.15)
    thread.join(10)
    assert len(measured) == 4
    assert all(0.05 <= m < 0.12 for m in measured), measured


def test_a_run_that_ends_early_releases_the_stopwatch():
    gate, errors = EpochGate(), []

    def stopwatch():
        try:
            for _ in range(3):
                gate.setup()
                gate.one_epoch()
        except RunEnded as exc:
            errors.append(exc)

    thread = threading.Thread(target=stopwatch)
    thread.start()
    _train(gate, epochs=1, train_s=0.01, validate_s=0.0)  # stopped after one epoch
    thread.join(10)
    assert not thread.is_alive() and len(errors) == 1


def test_a_half_done_count_is_cleared_before_a_refusal_is_printed():
    stream = _Tty()
    reporter = make_reporter(stream, environ={"TERM": "xterm"})
    count = reporter.counter("download", "bytes")
    count(1_000_000, 68_606_236)  # then the connection drops
    reporter.close()
    reporter.line("refused")
    assert stream.getvalue().endswith("refused\n")

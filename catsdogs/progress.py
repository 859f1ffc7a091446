"""Show how far a session has got and when it will end: live on a terminal, lines in a log.

A full matrix is 12 trainings of 20 epochs: hours on a CPU. A person watching a terminal
wants to see which run of how many is training, the epoch within it, and when the run and
the whole matrix will end; a CI log wants one plain line per epoch with the same ETA, and
no cursor tricks. `make_reporter` picks one of the two from the stream and `CI`.

The estimate (`MatrixClock`) is pure bookkeeping, kept apart from rendering: per variant,
the median of its finished epochs after the first (the first holds tracing and
autotuning and is estimated from first epochs only); a variant not seen yet borrows the
median over all variants seen, so its ETA is rough until its own first epochs finish.

The live display is rich's `Progress` (rich already comes with Keras 3, so it adds no
dependency to install; it draws several bars at once and redraws in place). Downloads and
the first decode of the images report through `counter` the same way.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
from typing import Any, Callable, TextIO

Counter = Callable[[int, int], None]


# ---------------------------------------------------------------- the estimate


def epoch_line(epoch: int, epochs: int, logs: dict[str, Any], seconds: float) -> str:
    """One epoch as a log line, fixed columns so a log reads like a table (shared by the
    per-epoch progress of `catsdogs run`, the bench and `catsdogs speed`)."""
    nan = float("nan")
    return (f"  epoch {epoch:>3}/{epochs}  loss {logs.get('loss', nan):.4f}"
            f"  acc {logs.get('accuracy', nan):.4f}  val_loss {logs.get('val_loss', nan):.4f}"
            f"  val_acc {logs.get('val_accuracy', nan):.4f}  {seconds:6.1f}s")


def format_duration(seconds: float | None) -> str:
    """'45s', '3m10s', '2h05m'; '?' while there is nothing to estimate from."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclasses.dataclass
class MatrixClock:
    """Epoch times seen so far in a session and the ETAs they imply.

    `runs` is the session's pending (variant, seed) list in order; `current` indexes it
    and `epochs_done` counts finished epochs of the current run."""

    runs: list[tuple[str, int]]
    epochs: int
    current: int = 0
    epochs_done: int = 0
    first: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    later: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def start_run(self, index: int) -> None:
        """Run `index` (0-based) of `runs` begins."""
        self.current, self.epochs_done = index, 0

    def finish_epoch(self, seconds: float) -> None:
        """One epoch of the current run ended after `seconds`."""
        variant = self.runs[self.current][0]
        bucket = self.first if self.epochs_done == 0 else self.later
        bucket.setdefault(variant, []).append(seconds)
        self.epochs_done += 1

    def _epoch_estimates(self, variant: str) -> tuple[float, float] | None:
        """(first epoch, later epoch) seconds for `variant`, or None before any
        estimate exists. Later epochs come only from later epochs (tracing excluded);
        with one epoch per run there are none, and first epochs are all there is."""
        pool = self.later if self.epochs > 1 else self.first
        own = pool.get(variant)
        seen = [t for times in pool.values() for t in times]
        if not own and not seen:
            return None
        later = statistics.median(own or seen)
        firsts = self.first.get(variant)
        return (statistics.median(firsts) if firsts else later), later

    def eta_run(self, elapsed_in_epoch: float = 0.0) -> float | None:
        """Seconds until the current run's last epoch ends."""
        if self.current >= len(self.runs):
            return 0.0
        estimate = self._epoch_estimates(self.runs[self.current][0])
        if estimate is None:
            return None
        first, later = estimate
        left = self.epochs - self.epochs_done
        if left <= 0:
            return 0.0
        total = (first + (left - 1) * later) if self.epochs_done == 0 else left * later
        return max(0.0, total - elapsed_in_epoch)

    def eta_matrix(self, elapsed_in_epoch: float = 0.0) -> float | None:
        """Seconds until the last run of the session ends: this run's ETA plus every
        later run's first epoch and remaining epochs, at its variant's estimate."""
        now = self.eta_run(elapsed_in_epoch)
        if now is None:
            return None
        for variant, _ in self.runs[self.current + 1:]:
            estimate = self._epoch_estimates(variant)
            if estimate is None:
                return None
            now += estimate[0] + (self.epochs - 1) * estimate[1]
        return now


def count_eta(started: float, done: int, total: int, now: float | None = None) -> float | None:
    """Seconds left for a count (bytes, images) at the average rate so far."""
    now = time.perf_counter() if now is None else now
    if done <= 0 or total <= 0 or now <= started:
        return None
    return (now - started) / done * max(total - done, 0)


# ---------------------------------------------------------------- reporters


def _is_live(stream: TextIO, environ: dict[str, str]) -> bool:
    """Live redraws only where a person watches: a terminal, outside CI."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not environ.get("CI") and environ.get("TERM", "") != "dumb"


class Reporter:
    """What a session reports, whatever the display: runs, epochs, counts.

    Subclasses render; this class keeps the clock and the Keras callback."""

    def __init__(self, stream: TextIO, prefix: str = "") -> None:
        self.stream = stream
        self.prefix = prefix
        self.clock = MatrixClock([], 1)
        self._epoch_start = time.perf_counter()
        self._label = ""

    # -- session and runs
    def start_session(self, runs: list[tuple[str, int]], epochs: int) -> None:
        """The pending matrix is known: ETAs cover exactly these runs."""
        self.clock = MatrixClock(list(runs), epochs)

    def start_run(self, variant: str, seed: int) -> None:
        """A run of the matrix starts (its index is looked up, so resumed sessions and
        shards number their own runs)."""
        runs = self.clock.runs
        index = runs.index((variant, seed)) if (variant, seed) in runs else len(runs)
        if index == len(runs):
            runs.append((variant, seed))
        self.clock.start_run(index)
        self._label = f"run {index + 1}/{len(runs)} {variant} seed {seed}"

    def end_run(self, row: dict[str, Any]) -> None:
        """A run ended: one lasting line with its outcome."""
        if row.get("status") == "ok":
            self.line(f"{self._label}: test accuracy {row['test_accuracy']:.4f}  "
                      f"gap {row['overfit_gap']:+.4f}  step {row['step_time_ms']:.1f} ms")
        else:
            self.line(f"{self._label}: FAILED {row.get('error', '')}")

    def etas(self) -> str:
        """'ETA run 3m10s, matrix 1h02m', from the epochs finished so far."""
        elapsed = time.perf_counter() - self._epoch_start
        return (f"ETA run {format_duration(self.clock.eta_run(elapsed))}, "
                f"matrix {format_duration(self.clock.eta_matrix(elapsed))}")

    # -- epochs (called by the Keras callback)
    def epoch_begin(self, epoch: int, steps: int | None) -> None:
        self._epoch_start = time.perf_counter()

    def step_end(self, step: int, steps: int | None) -> None:
        """A training step ended; live displays redraw, logs stay quiet."""

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.clock.finish_epoch(now - self._epoch_start)
        self._epoch_start = now  # until the next epoch begins, nothing is under way

    def keras_callback(self):
        """A Keras callback that feeds this reporter (Keras imported only here)."""
        from catsdogs.backend import keras_module

        keras = keras_module()

        reporter = self

        class _Report(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                reporter.epoch_begin(epoch, self.params.get("steps"))

            def on_train_batch_end(self, batch, logs=None):
                reporter.step_end(batch + 1, self.params.get("steps"))

            def on_epoch_end(self, epoch, logs=None):
                reporter.epoch_end(epoch, dict(logs or {}))

        return _Report()

    # -- plain output and counts
    def line(self, text: str) -> None:
        """A lasting line of output."""
        print(self.prefix + text, file=self.stream, flush=True)

    def counter(self, label: str, unit: str = "") -> Counter:
        """A (done, total) callback for a download or a decode pass."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop any live display."""


class LineReporter(Reporter):
    """For logs and CI: today's one line per epoch, with the ETA added."""

    def start_run(self, variant: str, seed: int) -> None:
        super().start_run(variant, seed)
        index, total = self.clock.current + 1, len(self.clock.runs)
        variant, seed = self.clock.runs[self.clock.current]
        self.line(f"[{index}/{total}] {variant} seed {seed}, {self.clock.epochs} epochs")

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        seconds = time.perf_counter() - self._epoch_start
        super().epoch_end(epoch, logs)
        self.line(f"{epoch_line(epoch + 1, self.clock.epochs, logs, seconds)}  {self.etas()}")

    def counter(self, label: str, unit: str = "") -> Counter:
        """A line at start, then at every further tenth, then when done."""
        started, shown = time.perf_counter(), [-1]

        def report(done: int, total: int) -> None:
            tenth = 10 if total <= 0 else min(10, done * 10 // total)
            if tenth <= shown[0]:
                return
            shown[0] = tenth
            if total > 0 and done >= total:
                self.line(f"{label}: {_amount(total, unit)} done in "
                          f"{format_duration(time.perf_counter() - started)}")
            else:
                part = _amount(done, unit if unit == "bytes" else "")
                self.line(f"{label}: {part} of {_amount(total, unit)}, ETA "
                          f"{format_duration(count_eta(started, done, total))}")

        return report


def _amount(count: int, unit: str) -> str:
    """'34.3 MB' for bytes, '120 images' for counts ('120' without a unit)."""
    if unit == "bytes":
        return f"{count / 1e6:.1f} MB"
    return f"{count} {unit}".strip()


class LiveReporter(Reporter):
    """For a terminal: two bars redrawn in place, the matrix and the run's epochs."""

    _REDRAW_S = 0.25  # redraws per step would cost more than the step on small models

    def __init__(self, stream: TextIO, prefix: str = "") -> None:
        super().__init__(stream, prefix)
        from rich.console import Console

        self.console = Console(file=stream)
        self._bars = None
        self._tasks: dict[str, Any] = {}
        self._drawn = 0.0
        self._counters: list[Any] = []  # bars of counts that may not have finished

    def _progress(self):
        """A rich Progress of our columns; ETAs come from the clock, not rich's rate."""
        from rich.progress import BarColumn, Progress, TextColumn

        return Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.fields[note]}"),
                        console=self.console, auto_refresh=False, transient=True)

    def start_run(self, variant: str, seed: int) -> None:
        super().start_run(variant, seed)
        self.close()
        self._bars = self._progress()
        self._bars.start()
        clock = self.clock
        self._tasks = {
            "matrix": self._bars.add_task(f"matrix  run {clock.current + 1}/{len(clock.runs)}",
                                          total=len(clock.runs) * clock.epochs,
                                          completed=clock.current * clock.epochs, note=""),
            "run": self._bars.add_task(f"{variant} seed {seed}", total=clock.epochs, note=""),
        }
        self._draw(force=True)

    def _draw(self, force: bool = False, step: str = "") -> None:
        now = time.perf_counter()
        if self._bars is None or (not force and now - self._drawn < self._REDRAW_S):
            return
        clock = self.clock
        elapsed = now - self._epoch_start
        epoch = min(clock.epochs_done + 1, clock.epochs)
        self._bars.update(self._tasks["run"], completed=clock.epochs_done,
                          note=f"epoch {epoch}/{clock.epochs}{step}  ETA "
                               f"{format_duration(clock.eta_run(elapsed))}")
        self._bars.update(self._tasks["matrix"],
                          completed=clock.current * clock.epochs + clock.epochs_done,
                          note=f"ETA {format_duration(clock.eta_matrix(elapsed))}")
        self._bars.refresh()
        self._drawn = now

    def step_end(self, step: int, steps: int | None) -> None:
        self._draw(step=f" step {step}/{steps or '?'}")

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        super().epoch_end(epoch, logs)
        self._draw(force=True)

    def end_run(self, row: dict[str, Any]) -> None:
        self.close()
        super().end_run(row)

    def line(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(self.prefix + text, markup=False, highlight=False)
        else:
            super().line(text)

    def counter(self, label: str, unit: str = "") -> Counter:
        """A bar with rich's own rate-based time remaining (a count has no tracing)."""
        from rich import progress as rp

        amount = rp.DownloadColumn() if unit == "bytes" else rp.MofNCompleteColumn()
        bars = rp.Progress(rp.TextColumn(label), rp.BarColumn(), amount, rp.TextColumn("ETA"),
                           rp.TimeRemainingColumn(), console=self.console, transient=True)
        state: dict[str, Any] = {}
        self._counters.append(bars)

        def report(done: int, total: int) -> None:
            if "task" not in state:
                bars.start()
                state["task"], state["started"] = bars.add_task(label, total=total), \
                    time.perf_counter()
            bars.update(state["task"], completed=done, total=total)
            if total > 0 and done >= total:
                bars.stop()
                self.line(f"{label}: {_amount(total, unit)} done in "
                          f"{format_duration(time.perf_counter() - state['started'])}")

        return report

    def close(self) -> None:
        """Stop every live display, also a count that stopped half-way (a failed
        download), so a refusal is printed below the bars, not into them."""
        for bars in self._counters:
            bars.stop()
        self._counters.clear()
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


def make_reporter(stream: TextIO | None = None, environ: dict[str, str] | None = None,
                  prefix: str = "", live: bool | None = None) -> Reporter:
    """Live bars on a terminal outside CI, plain lines everywhere else."""
    stream = sys.stderr if stream is None else stream
    environ = dict(os.environ) if environ is None else environ
    live = _is_live(stream, environ) if live is None else live
    return LiveReporter(stream, prefix) if live else LineReporter(stream, prefix)

"""One benchmark per (variant, seed): one full training run, one round per epoch.

The run trains and is recorded exactly as `catsdogs run` does it
(`runner.run_and_record`: same signal handling, same --resume skip). pytest-benchmark
times its epochs (catsdogs.training.epoch_rounds): epoch 1, which holds tracing, is the warm-up
round, and every later epoch's training steps are one round, so min/median/stddev/IQR are
per-epoch training times and `--benchmark-compare-fail=median:10%` compares like with
like. `extra_info` carries the row's numbers, its `run_id` and the result set's path, so
a JSON entry leads to its row in runs.csv.
"""

from __future__ import annotations

import math

import pytest

from catsdogs.training import epoch_rounds, runner

EXTRA_INFO_FIELDS = (
    "train_accuracy", "val_accuracy", "test_accuracy", "overfit_gap", "train_loss",
    "val_loss", "test_loss", "test_correct", "n_test", "test_p_value", "step_time_ms",
    "step_time_ms_p90", "images_per_sec", "first_epoch_s", "train_wall_s", "peak_rss_mb",
    "gpu_peak_mb", "params_total", "params_trainable", "params_non_trainable", "epochs",
    "batch_size", "replicas",
)


def extra_info(row: dict, result_set) -> dict:
    """The row's numbers, plus the few labels that lead a reader of the JSON to the row."""
    info = {key: row.get(key) for key in EXTRA_INFO_FIELDS if row.get(key) is not None}
    info.update(dataset=row["dataset"], dataset_fingerprint=row["dataset_fingerprint"],
                pretrained=bool(row["pretrained"]), status=row["status"],
                variant=row["variant"], seed=row["seed"], run_id=row["run_id"],
                result_set=str(result_set.path))
    return info


def _stop_session(session, interrupted: BaseException) -> None:
    """End the whole session with 130 and the --resume hint, as `catsdogs run` does.

    Called outside the `except` that caught the signal on purpose: pytest renders the
    exception chain of an exit, and a signal can land in a frame without a line number
    (seen in `typing` on Python 3.11), where pytest's own traceback printer then crashes
    and the session ends with 1 instead of 130."""
    reason = "Ctrl-C" if isinstance(interrupted, KeyboardInterrupt) \
        else str(interrupted)
    if not session.started:  # the set is made with the first finished run: none is
        pytest.exit(f"interrupted ({reason}) before the first run finished; nothing was "
                    "recorded", returncode=130)
    pytest.exit(f"interrupted ({reason}): finished runs are recorded in "
                f"{session.result_set.path}; add the missing ones with --resume "
                f"{session.result_set.path}", returncode=130)


def _train_in_rounds(benchmark, state, variant: str, seed: int) -> dict:
    """Train and record one pair while pytest-benchmark times its epochs."""
    options, session = state.options, state.session
    splits = runner.load_data(session.prepared, seed)  # decoding stays out of every round
    gate = epoch_rounds.EpochGate()
    stopwatch, errors = epoch_rounds.stopwatch(benchmark, gate, options.epochs)
    state.reporter.start_run(variant, seed)
    interrupted: BaseException | None = None
    try:
        row = runner.run_and_record(session.prepared, session, variant, seed,
                                    splits=splits, callbacks=(gate.keras_callback(),
                                                              state.reporter.keras_callback()))
    except (KeyboardInterrupt, runner.Interrupted) as exc:
        interrupted = exc
    finally:
        gate.open()
        stopwatch.join()
    if interrupted is not None:
        _stop_session(session, interrupted)
    state.reporter.end_run(row)
    if errors and row["status"] == "ok":
        raise errors[0]  # the run is recorded; the timing machinery failed
    return row


def test_train(benchmark, bench_state, fresh_line, variant, seed):
    if (variant, seed) not in bench_state.todo:
        pytest.skip(f"{variant} seed {seed} is already in {bench_state.session.result_set.path}")
    row = _train_in_rounds(benchmark, bench_state, variant, seed)
    bench_state.rows.append(row)
    benchmark.extra_info.update(extra_info(row, bench_state.session.result_set))

    assert row["status"] == "ok", f"{variant} seed {seed} failed: {row['error']}"
    for key in ("train_loss", "val_loss", "test_loss"):
        assert math.isfinite(row[key]), f"{key} is {row[key]}"
    if not bench_state.options.smoke:
        # A coin flip gets each test image right with p = 0.5; beat it clearly.
        assert row["test_p_value"] < 0.01, (
            f"{variant} seed {seed}: test accuracy {row['test_accuracy']:.3f} "
            f"({row['test_correct']}/{row['n_test']}) does not beat 50% at p < 0.01 "
            f"(p = {row['test_p_value']:.3g})")

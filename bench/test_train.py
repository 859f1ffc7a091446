"""One benchmark per (variant, seed): one full training run, timed once.

`benchmark.pedantic(rounds=1, iterations=1, warmup_rounds=0)`: plain `benchmark()` would
calibrate and train several times. The row is recorded in the session's result set as
soon as the run ends; the metrics also go to `benchmark.extra_info`, so
`--benchmark-json`, `--benchmark-autosave` and `--benchmark-compare` carry them.
"""

from __future__ import annotations

import math

import pytest

from catsdogs.runner import run_one

EXTRA_INFO_FIELDS = (
    "train_accuracy", "val_accuracy", "test_accuracy", "overfit_gap", "train_loss",
    "val_loss", "test_loss", "test_correct", "n_test", "test_p_value", "step_time_ms",
    "step_time_ms_p90", "images_per_sec", "first_epoch_s", "train_wall_s", "peak_rss_mb",
    "gpu_peak_mb", "params_total", "params_trainable", "params_non_trainable", "epochs",
    "batch_size", "replicas",
)


def extra_info(row: dict) -> dict:
    """The row's numbers, plus the few labels a reader of the JSON needs."""
    info = {key: row.get(key) for key in EXTRA_INFO_FIELDS if row.get(key) is not None}
    info.update(dataset=row["dataset"], dataset_fingerprint=row["dataset_fingerprint"],
                pretrained=bool(row["pretrained"]), status=row["status"],
                variant=row["variant"], seed=row["seed"])
    return info


def test_train(benchmark, bench_session, variant, seed):
    if (variant, seed) in bench_session.done:
        pytest.skip(f"{variant} seed {seed} is already in {bench_session.result_set.path}")
    splits = bench_session.splits(seed)
    row, epoch_rows = benchmark.pedantic(
        run_one, args=(bench_session.prepared, variant, seed),
        kwargs={"splits": splits}, rounds=1, iterations=1, warmup_rounds=0)
    bench_session.result_set.append_run(row, epoch_rows)
    bench_session.rows.append(row)
    benchmark.extra_info.update(extra_info(row))

    assert row["status"] == "ok", f"{variant} seed {seed} failed: {row['error']}"
    for key in ("train_loss", "val_loss", "test_loss"):
        assert math.isfinite(row[key]), f"{key} is {row[key]}"
    if not bench_session.options.smoke:
        # A coin flip gets each test image right with p = 0.5; beat it clearly.
        assert row["test_p_value"] < 0.01, (
            f"{variant} seed {seed}: test accuracy {row['test_accuracy']:.3f} "
            f"({row['test_correct']}/{row['n_test']}) does not beat 50% at p < 0.01 "
            f"(p = {row['test_p_value']:.3g})")

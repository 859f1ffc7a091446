"""Faults during training (issue 6): a run whose loss becomes NaN/inf, or that runs out of
GPU memory, is recorded as status=failed with its reason, and the session goes on to the
next (variant, seed).

One session of three model1 runs goes through the real runner path that `catsdogs run`
uses (prepare -> open_result_set -> pending -> run_and_record -> run_one -> train_run):
- seed 0 diverges for real: its model is compiled with Adam(learning_rate=1e12) (the
  injection replaces `catsdogs.models.compile_model` for that one build), so the weights
  blow up and the loss becomes NaN during the first epoch;
- seed 1 runs out of memory: there is no GPU here, so `Model.fit` raises the
  `tf.errors.ResourceExhaustedError` TensorFlow raises on a GPU OOM, once;
- seed 2 trains normally.
"""

from __future__ import annotations

import csv
import math

import pytest
from backend_probe import compile_diverging
from conftest import copy_real_subset

from catsdogs.resultset.schema import EPOCH_COLUMNS, RUN_COLUMNS

pytestmark = pytest.mark.slow

OOM_MESSAGE = ("OOM when allocating tensor with shape[32,16,158,158] and type float on "
               "/job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc")


@pytest.fixture(scope="module")
def session(tmp_path_factory, real_data_dir):
    """Run the three pairs with the two faults injected; return the result set and the
    progress lines the runner printed."""
    import tensorflow as tf
    from tensorflow import keras

    from catsdogs import models
    from catsdogs.options import resolve
    from catsdogs.training import runner

    root = tmp_path_factory.mktemp("faults")
    data = root / "cats_and_dogs_filtered"
    copy_real_subset(real_data_dir, data, {"train": 10, "validation": 10})
    options = resolve({"data_dir": str(data), "variants": "model1", "seeds": "0,1,2",
                       "epochs": "1", "batch_size": "4", "results_dir": str(root / "results")},
                      environ={})

    real_compile, real_fit = models.compile_model, keras.Model.fit
    builds, fits = [], []

    def compile_model(model, *, jit_compile=False):
        builds.append(model.name)
        if len(builds) == 1:  # seed 0: as the post compiles it, but a learning rate of 1e12
            return compile_diverging(keras, model, jit_compile=jit_compile)
        return real_compile(model, jit_compile=jit_compile)

    def fit(self, *args, **kwargs):
        fits.append(self.name)
        if len(fits) == 2:  # seed 1: the device runs out of memory in the first step
            raise tf.errors.ResourceExhaustedError(None, None, OOM_MESSAGE)
        return real_fit(self, *args, **kwargs)

    lines: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "compile_model", compile_model)
        patch.setattr(keras.Model, "fit", fit)
        prepared = runner.prepare(options)
        result_set = runner.open_result_set(prepared)
        rows = [runner.run_and_record(prepared, result_set, variant, seed, progress=lines.append)
                for variant, seed in runner.pending(prepared)]
    assert len(builds) == 3 and len(fits) == 3  # every pair was attempted
    return result_set, rows, lines


def _complete(rows, columns):
    for row in rows:
        assert list(row) == list(columns) and None not in row.values(), row


def test_nan_loss_fails_that_run_and_the_session_goes_on(session):
    result_set, _, lines = session
    recorded = result_set.runs()
    _complete(recorded, RUN_COLUMNS)
    assert [(r["seed"], r["status"]) for r in recorded] == [("0", "failed"), ("1", "failed"),
                                                            ("2", "ok")]
    diverged = recorded[0]
    assert diverged["error"].startswith("TrainingDiverged: loss became nan"), diverged["error"]
    assert diverged["finished_utc"] and diverged["dataset_fingerprint"]
    assert any(line.startswith("  FAILED baseline_cnn seed 0: TrainingDiverged")
               for line in lines), lines
    # The failed run left no epoch rows; the good one has its epoch, with finite losses.
    epochs = result_set.epochs()
    _complete(epochs, EPOCH_COLUMNS)
    assert {e["run_id"] for e in epochs} == {recorded[2]["run_id"]}
    assert all(math.isfinite(float(recorded[2][key])) for key in ("train_loss", "val_loss",
                                                                  "test_loss"))


def test_gpu_out_of_memory_fails_that_run_with_a_batch_size_hint_and_goes_on(session):
    result_set, _, lines = session
    oom = result_set.runs()[1]
    assert oom["status"] == "failed" and oom["seed"] == "1"
    assert oom["error"] == f"out of memory: {OOM_MESSAGE}; lower --batch-size"
    assert any("FAILED baseline_cnn seed 1: out of memory" in line for line in lines)
    assert result_set.runs()[2]["status"] == "ok"  # the session went on
    assert "\n" not in oom["error"]
    with open(result_set.path / "runs.csv", newline="") as handle:  # still a plain CSV
        assert len(list(csv.DictReader(handle))) == 3

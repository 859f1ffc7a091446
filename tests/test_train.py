"""Seeded training: a short run on the synthetic set clearly beats 50%, and two runs with
the same seed and --deterministic give identical per-epoch numbers on CPU."""

from __future__ import annotations

import math

import pytest

from catsdogs.dataset.pipeline import load_splits
from catsdogs.dataset.synthetic import ensure_synthetic
from catsdogs.training.train import TrainConfig, binomial_p_value, step_statistics, train_run


@pytest.fixture(scope="module")
def synthetic_splits():
    return load_splits(ensure_synthetic(), seed=0)


def test_short_training_on_synthetic_beats_chance_clearly(synthetic_splits):
    result = train_run("model1", synthetic_splits, seed=0, config=TrainConfig(epochs=3))
    assert synthetic_splits.dataset == "synthetic"
    assert result["val_accuracy"] >= 0.8, result
    assert result["test_p_value"] < 0.01
    assert len(result["epochs"]) == 3 and result["epochs_completed"] == 3
    assert result["overfit_gap"] == pytest.approx(result["train_accuracy"]
                                                  - result["val_accuracy"])
    assert result["step_time_ms"] > 0 and result["first_epoch_s"] > 0


def test_same_seed_deterministic_runs_are_identical():
    config = TrainConfig(epochs=2, deterministic=True)
    data_dir = ensure_synthetic()
    first = train_run("model2", load_splits(data_dir, seed=11), seed=11, config=config)
    second = train_run("model2", load_splits(data_dir, seed=11), seed=11, config=config)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    assert [[e[k] for k in keys] for e in first["epochs"]] == \
           [[e[k] for k in keys] for e in second["epochs"]]
    assert first["test_accuracy"] == second["test_accuracy"]


def test_binomial_p_value_is_exact():
    assert binomial_p_value(10, 10) == pytest.approx(0.5 ** 10)
    assert binomial_p_value(0, 10) == pytest.approx(1.0)
    assert binomial_p_value(110, 192) < 0.05 < binomial_p_value(105, 192)
    assert math.isnan(binomial_p_value(0, 0))


def test_step_statistics_skip_the_first_epoch():
    stats = step_statistics([[1000.0, 900.0], [10.0, 20.0, 30.0], [40.0]], batch_size=32)
    assert stats["step_time_ms"] == 25.0
    assert stats["images_per_sec"] == pytest.approx(32 / 0.025)
    one_epoch = step_statistics([[10.0, 30.0]], batch_size=32)
    assert one_epoch["step_time_ms"] == 20.0

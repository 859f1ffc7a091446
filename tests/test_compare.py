"""`catsdogs compare` and `catsdogs trend`: regression verdicts that do not cry wolf.

Result sets come from tests/resultsets.py (test data written through the real writer);
"slower" and "worse" candidates are copies of a base with known changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from resultsets import copy_result_set, write_result_set

from catsdogs.cli import main
from catsdogs.compare import (
    compare_sets,
    holm,
    permutation_p,
    smallest_permutation_p,
    step_test,
    trend,
    version_key,
)
from catsdogs.errors import UsageError
from catsdogs.models import VARIANTS


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Four variants x 3 seeds x 5 epochs, with ordinary noise."""
    return write_result_set(tmp_path_factory.mktemp("base"), accuracy_std=0.015,
                            step_noise=0.05, run_noise=0.02, rng=10)


def _rows(text: str) -> dict[str, str]:
    """Table rows by variant: the verdict is the last cell."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] in VARIANTS:
            rows[cells[0]] = cells[-1]
    return rows


def _regressions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("REGRESSION")]


# ---------------------------------------------------------------- no false alarms


def test_a_result_set_against_itself_is_all_same(base):
    text, code = compare_sets([base], [base])
    assert code == 0, text
    assert _rows(text) == {variant: "same" for variant in VARIANTS}
    assert "Welch t" in text and not _regressions(text)


@pytest.mark.parametrize("pair", [(1, 2), (3, 4), (5, 6)])
def test_noisy_sets_with_the_same_means_are_same(tmp_path, pair):
    """Accuracies drawn around the same means with a 2-point std, per-epoch step times
    with 15% noise: different numbers, same truth, so no verdict may fire."""
    noisy = {"accuracy_std": 0.02, "step_noise": 0.15}
    a = write_result_set(tmp_path / "a", rng=pair[0], **noisy)
    b = write_result_set(tmp_path / "b", rng=pair[1], **noisy)
    text, code = compare_sets([a], [b])
    assert code == 0, text
    assert set(_rows(text).values()) == {"same"}, text


# ---------------------------------------------------------------- real changes


def test_a_30_percent_slower_variant_is_a_regression_naming_it(base, tmp_path):
    slower = copy_result_set(base, tmp_path, step_scale=1.3, variants=["augmented_cnn"])
    text, code = compare_sets([base], [slower])
    assert code == 1, text
    assert _rows(text)["augmented_cnn"] == "regression"
    assert {v for v, verdict in _rows(text).items() if verdict != "same"} == {"augmented_cnn"}
    (line,) = _regressions(text)
    assert line.startswith("REGRESSION augmented_cnn: step time x1.30")
    assert "more than 10% slower" in line


def test_a_30_percent_faster_set_is_an_improvement_and_passes(base, tmp_path):
    faster = copy_result_set(base, tmp_path, step_scale=1 / 1.3)
    text, code = compare_sets([base], [faster])
    assert code == 0, text
    assert set(_rows(text).values()) == {"improvement"}


def test_a_slowdown_within_the_allowed_percentage_is_same(base, tmp_path):
    slower = copy_result_set(base, tmp_path, step_scale=1.3)
    text, code = compare_sets([base], [slower], max_slowdown=50.0)
    assert code == 0 and set(_rows(text).values()) == {"same"}, text


def test_a_10_point_accuracy_drop_over_3_seeds_is_a_regression(base, tmp_path):
    worse = copy_result_set(base, tmp_path, accuracy_shift=-0.10, variants=["baseline_cnn"])
    text, code = compare_sets([base], [worse])
    assert code == 1, text
    (line,) = _regressions(text)
    assert line.startswith("REGRESSION baseline_cnn: test accuracy -")
    assert "Welch t" in line and "Holm p=" in line


def test_one_seed_per_side_cannot_reach_significance_and_says_so(tmp_path):
    a = write_result_set(tmp_path / "a", seeds=[0], variants=["baseline_cnn"])
    worse = copy_result_set(a, tmp_path / "b", accuracy_shift=-0.10)
    text, code = compare_sets([a], [worse])
    assert code == 0, text  # a 10-point drop on one seed is not evidence of a regression
    assert "exact permutation; n too small: p >= 1.00, cannot reach 0.05" in text


def test_too_few_step_times_give_a_ratio_but_no_speed_verdict(tmp_path):
    """One seed of two epochs: epoch 2 alone on each side. A zero-width 'interval' from
    one value against one value must not fail CI."""
    a = write_result_set(tmp_path / "a", seeds=[0], epochs=2, variants=["baseline_cnn"])
    slower = copy_result_set(a, tmp_path / "b", step_scale=1.3)
    text, code = compare_sets([a], [slower])
    assert code == 0, text
    assert "| 1.300 " in text and "n/a (< 3 epochs)" in text
    assert "one base seed; its step-time CI covers epoch-to-epoch noise only" in text


def test_seeds_without_variance_use_the_permutation_test(tmp_path):
    a = write_result_set(tmp_path / "a", accuracy_std=0.0, variants=["baseline_cnn"])
    text, _ = compare_sets([a], [a])
    assert "exact permutation; n too small: p >= 0.10" in text


def test_a_variant_whose_candidate_runs_all_failed_is_a_regression(tmp_path):
    a = write_result_set(tmp_path / "a", variants=VARIANTS[:2])
    b = write_result_set(tmp_path / "b", variants=VARIANTS[:2],
                         failed=[("augmented_cnn", seed) for seed in (0, 1, 2)])
    text, code = compare_sets([a], [b])
    assert code == 1
    assert "REGRESSION augmented_cnn: all 3 candidate runs failed" in text


def test_variants_on_one_side_only_are_listed_as_not_compared(tmp_path):
    a = write_result_set(tmp_path / "a", variants=VARIANTS[:3])
    b = write_result_set(tmp_path / "b", variants=VARIANTS[1:])
    text, code = compare_sets([a], [b])
    assert code == 0, text
    assert set(_rows(text)) == set(VARIANTS[1:3])
    assert ("not compared: baseline_cnn (only in base), transfer_mobilenetv2 (only in "
            "candidate)") in text


def test_shards_on_each_side_are_merged(tmp_path):
    base_shards = [write_result_set(tmp_path / "b1", seeds=[0, 1], rng=1),
                   write_result_set(tmp_path / "b2", seeds=[2], rng=2)]
    text, code = compare_sets(base_shards, base_shards)
    assert code == 0
    assert "| baseline_cnn         | 3        | 3 " in text


# ---------------------------------------------------------------- refusals


def test_synthetic_against_real_is_refused_with_exit_2(tmp_path, capsys):
    real = write_result_set(tmp_path / "a", dataset="real", variants=["baseline_cnn"])
    synthetic = write_result_set(tmp_path / "b", dataset="synthetic", variants=["baseline_cnn"])
    with pytest.raises(UsageError, match="dataset: real .* vs synthetic"):
        compare_sets([real], [synthetic])
    assert main(["compare", str(real), str(synthetic)]) == 2
    assert "not comparable" in capsys.readouterr().err


def test_tensorflow_versions_may_differ_they_are_what_is_compared(base, tmp_path):
    other = copy_result_set(base, tmp_path, tf_version="2.20.0")
    text, code = compare_sets([base], [other])
    assert code == 0 and "TF 2.20.0" in text and "TF 2.21.0" in text


# ---------------------------------------------------------------- the statistics


def test_holm_adjustment_matches_the_textbook():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_exact_permutation_p_of_a_complete_separation():
    rng = np.random.default_rng(0)
    p, exact = permutation_p(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), rng)
    assert exact and p == pytest.approx(2 / 20) == smallest_permutation_p(3, 3)


def test_the_step_time_interval_is_reproducible_and_covers_the_ratio():
    rng = np.random.default_rng(1)
    base = [100 * (1 + 0.05 * rng.standard_normal(9)) for _ in range(3)]
    slower = [1.3 * values for values in base]
    first, second = step_test(base, slower), step_test(base, slower)
    assert first == second
    assert first.ratio == pytest.approx(1.3)
    assert first.low <= 1.3 <= first.high


# ---------------------------------------------------------------- trend


def test_trend_orders_tensorflow_versions_and_writes_its_plot(base, tmp_path):
    older = copy_result_set(base, tmp_path / "old", tf_version="2.9.3", step_scale=1.2)
    text = trend([base, older])  # newest first on purpose
    lines = [line for line in text.splitlines() if line.startswith("| baseline_cnn")]
    assert [line.split("|")[2].strip() for line in lines] == ["2.9.3", "2.21.0"]
    assert (base / "trend.png").stat().st_size > 1000
    assert (base / "trend.pdf").exists()
    assert f"wrote into {base}: trend.png, trend.pdf" in text


def test_version_order_is_numeric():
    versions = ["2.21.0", "2.9.0", "2.16.2", "2.21.0rc1", "nightly"]
    assert sorted(versions, key=version_key) == ["2.9.0", "2.16.2", "2.21.0rc1", "2.21.0",
                                                 "nightly"]

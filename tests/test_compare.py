"""`catsdogs compare`: identity first, then verdicts that see real changes and say when
they cannot. Result sets are TEST DATA written through the real writer (tests/resultsets.py
and ResultSet below); "worse" and "slower" candidates are copies of a base with known
changes."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from resultsets import copy_result_set, write_result_set

from catsdogs import stats
from catsdogs.cli import main
from catsdogs.errors import UsageError
from catsdogs.models import VARIANTS
from catsdogs.resultset.schema import row_check
from catsdogs.resultset.store import ResultSet
from catsdogs.verdicts.compare import compare
from catsdogs.verdicts.output import compare_text as render_text

REAL_SET = Path(__file__).parents[1] / "results" / "runs" / "20261125T232135Z_vm_tf2.21.0_cpu"
ALLOWED = set(stats.VERDICTS) | {"identical"}


def copy_editing(source: Path, results_dir: Path,
                 edit: Callable[[dict, list[dict]], None]) -> Path:
    """A copy of `source` through the real writer, with edit(run_row, epoch_rows) applied
    to every run first (rows as the CSVs hold them: strings)."""
    source_set = ResultSet.open(source)
    env = {k: v for k, v in source_set.environment().items()
           if k not in ("schema_version", "result_set", "created_utc")}
    target = ResultSet.create(results_dir, env)
    epochs = source_set.epochs()
    for row in source_set.runs():
        row = {k: v for k, v in row.items() if k not in ("schema_version", "result_set")}
        epoch_rows = [{k: v for k, v in e.items() if k != "schema_version"}
                      for e in epochs if e["run_id"] == row["run_id"]]
        edit(row, epoch_rows)
        target.append_run(row, epoch_rows)
    return target.path


def verdicts(result) -> dict[tuple[str, str], str]:
    return {(m.variant, m.metric): m.verdict for m in result.verdicts()}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Four variants x 3 seeds x 5 epochs, 2-point seed spread, 3% run-to-run step noise."""
    return write_result_set(tmp_path_factory.mktemp("base"), accuracy_std=0.02,
                            step_noise=0.05, run_noise=0.03, rng=10)


# ---------------------------------------------------------------- what it must see


def shards(tmp_path: Path, name: str, accuracies, shifts=None) -> list[Path]:
    """One result set per seed (seed i at accuracies[i], all four variants, no noise), or,
    with shifts, copies of those sets with seed i's accuracy moved by shifts[i]: the
    candidate side of the same seeds in the same configuration. Through the real writer."""
    base = [write_result_set(tmp_path / f"{name}{seed}", seeds=[seed], accuracy=accuracy,
                             accuracy_std=0.0, rng=seed)
            for seed, accuracy in enumerate(accuracies)]
    if shifts is None:
        return base
    return [copy_result_set(shard, tmp_path / f"{name}{seed}-shifted", accuracy_shift=shift)
            for seed, (shard, shift) in enumerate(zip(base, shifts))]


def accuracy_reasons(result) -> list[str]:
    return ["; ".join(m.reasons) for m in result.verdicts() if m.metric == "test_accuracy"]


def test_a_10_point_drop_in_every_seed_with_zero_spread_is_a_regression(tmp_path, capsys):
    agreeing = write_result_set(tmp_path / "a", accuracy=0.75, accuracy_std=0.0, rng=1)
    worse = copy_result_set(agreeing, tmp_path / "b", accuracy_shift=-0.10,
                            variants=["baseline_cnn"])
    result = compare([agreeing], [worse])
    assert verdicts(result)[("baseline_cnn", "test_accuracy")] == "regression"
    assert {v for (variant, _), v in verdicts(result).items()
            if variant != "baseline_cnn"} <= {"identical", "unchanged", "inconclusive"}
    assert main(["compare", str(agreeing), str(worse)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION baseline_cnn test accuracy: -9.9 pts" in out
    assert "paired by seed over 3 seeds" in out


@pytest.mark.parametrize("accuracies,shifts", [
    ((0.75, 0.75, 0.75), (-0.10, -0.10, -0.10)),   # (a) seeds agree
    ((0.80, 0.70, 0.62), (-0.10, -0.10, -0.10)),   # (b) seeds spread widely: 80/70/62
    ((0.75, 0.75, 0.75), (-0.08, -0.10, -0.12)),   # (c) the drops themselves vary
    ((0.80, 0.70, 0.62), (-0.08, -0.10, -0.12))])  # (b) and (c) at once
def test_a_10_point_drop_in_every_seed_is_a_regression_however_the_seeds_spread(
        tmp_path, accuracies, shifts):
    """At 3 seeds x 192 images, as issue 9 requires: the sides hold the same seeds, so
    accuracy is paired by seed and the seeds' own spread cancels."""
    result = compare(shards(tmp_path, "base", accuracies),
                     shards(tmp_path, "cand", accuracies, shifts))
    assert {verdicts(result)[(v, "test_accuracy")] for v in VARIANTS} == {"regression"}
    assert all("paired by seed over 3 seeds" in reason for reason in accuracy_reasons(result))
    changes = [m.difference.estimate for m in result.verdicts() if m.metric == "test_accuracy"]
    assert all(-10.5 < change < -9.5 for change in changes)
    assert result.exit_code() == 1


def test_the_same_drop_between_different_seeds_is_unpaired_and_says_so(tmp_path):
    """Seeds 0-2 against seeds 3-5 cannot be paired: the unpaired analysis, named in the
    reasons, where the seeds' spread (80/70/62) hides a 10-point drop."""
    base = shards(tmp_path, "base", (0.80, 0.70, 0.62))
    other = [write_result_set(tmp_path / f"other{seed}", seeds=[seed], accuracy=accuracy,
                              accuracy_std=0.0, rng=seed)
             for seed, accuracy in zip((3, 4, 5), (0.70, 0.60, 0.52))]
    result = compare(base, other)
    for reason in accuracy_reasons(result):
        assert "unpaired, 3 base and 3 candidate seeds" in reason
        assert "0 seed(s) ran in the same configuration on both sides" in reason
    assert {verdicts(result)[(v, "test_accuracy")] for v in VARIANTS} == {"inconclusive"}


def test_seeds_on_one_side_only_are_left_out_of_the_paired_analysis(tmp_path):
    base = write_result_set(tmp_path / "a", seeds=[0, 1, 2, 3], accuracy=0.75,
                            accuracy_std=0.03, variants=["baseline_cnn"], rng=3)
    worse = copy_result_set(base, tmp_path / "b", accuracy_shift=-0.10)
    extra = write_result_set(tmp_path / "c", seeds=[7], variants=["baseline_cnn"], rng=4)
    result = compare([base], [worse, extra])
    (item,) = [m for m in result.verdicts() if m.metric == "test_accuracy"]
    assert item.verdict == "regression" and item.contrast.n == 4
    assert "paired by seed over 4 seeds" in item.reasons[0]
    assert "1 run(s) without a partner seed on the other side" in item.reasons[-1]


def test_a_doubled_step_time_is_a_regression_and_accuracy_stays_identical(base, tmp_path):
    slower = copy_result_set(base, tmp_path, step_scale=2.0)
    result = compare([base], [slower])
    for variant in VARIANTS:
        assert verdicts(result)[(variant, "step_time")] == "regression"
        assert verdicts(result)[(variant, "test_accuracy")] == "identical"
    assert result.exit_code() == 1
    assert "step time: x2.000, beyond x1.100" in render_text(result)


def test_a_set_against_itself_is_identical_and_never_a_regression(base, capsys):
    assert main(["compare", str(base), str(base)]) == 0
    out = capsys.readouterr().out
    assert "REGRESSION" not in out and "same" not in out
    result = compare([base], [base])
    assert {verdicts(result)[(v, "test_accuracy")] for v in VARIANTS} == {"identical"}


def test_two_sets_of_one_configuration_raise_no_alarm_and_say_what_would_settle_it(
        base, tmp_path):
    other = write_result_set(tmp_path, accuracy_std=0.02, step_noise=0.05, run_noise=0.03,
                             rng=11)
    result = compare([base], [other])
    assert result.exit_code() == 0
    assert set(verdicts(result).values()) <= {"unchanged", "inconclusive"}
    assert "seeds per side" in render_text(result)
    assert result.exit_code(strict=True) in (0, 3)


def test_strict_makes_inconclusive_exit_3(capsys):
    assert main(["compare", str(REAL_SET), str(REAL_SET), "--strict"]) == 3


def test_the_committed_real_set_against_itself_exits_0_without_same(capsys):
    assert main(["compare", str(REAL_SET), str(REAL_SET), "--format", "plain"]) == 0
    out = capsys.readouterr().out
    assert "same" not in out
    result = compare([REAL_SET], [REAL_SET])
    assert verdicts(result)[("baseline_cnn", "test_accuracy")] == "identical"
    (step,) = [m for m in result.verdicts() if m.metric == "step_time"]
    # A schema 1 set records no machine: its step times are compared with nothing ...
    assert step.verdict == "not comparable"
    assert step.reasons[0].startswith("not comparable: machine not recorded (base 1 of 1 run(s), "
                                      "candidate 1 of 1 run(s); sets written before")
    # ... unless the user opts in, and then the verdict says so.
    allowed = compare([REAL_SET], [REAL_SET], allow_different_machines=True)
    (step,) = [m for m in allowed.verdicts() if m.metric == "step_time"]
    assert step.verdict == "inconclusive" and "spread over seeds is unknown" in step.reasons[0]
    assert any("compared anyway (--allow-different-machines)" in r for r in step.reasons)


# ---------------------------------------------------------------- identity


def test_identical_histories_are_identical(base, tmp_path):
    copy = copy_editing(base, tmp_path, lambda row, epochs: None)
    result = compare([base], [copy])
    for item in result.results:
        assert item.identity.status == "identical" and item.identity.pairs == 3


def test_one_value_changed_at_epoch_3_is_diverged_at_epoch_3_naming_both_values(base, tmp_path):
    changed = {}

    def nudge(row, epochs):
        if row["variant"] == "augmented_cnn" and row["seed"] == "1":
            third = next(e for e in epochs if e["epoch"] == "3")
            changed["before"] = float(third["val_loss"])
            third["val_loss"] = repr(float(third["val_loss"]) + 1e-7)
            changed["after"] = float(third["val_loss"])

    copy = copy_editing(base, tmp_path, nudge)
    result = compare([base], [copy])
    by_variant = {item.variant: item.identity for item in result.results}
    ident = by_variant["augmented_cnn"]
    assert (ident.status, ident.epoch, ident.metric, ident.seed) == ("diverged", 3,
                                                                      "val_loss", 1)
    assert (ident.base_value, ident.candidate_value) == (changed["before"], changed["after"])
    assert (f"diverged at epoch 3 (val_loss, {changed['before']!r} -> {changed['after']!r}"
            in render_text(result))
    assert {by_variant[v].status for v in VARIANTS if v != "augmented_cnn"} == {"identical"}
    assert verdicts(result)[("augmented_cnn", "test_accuracy")] != "identical"


def test_gpu_runs_without_deterministic_make_no_identity_claim(tmp_path):
    gpu = write_result_set(tmp_path / "a", device="gpu", gpu_name="test GPU",
                           variants=["baseline_cnn"])
    result = compare([gpu], [copy_result_set(gpu, tmp_path / "b")])
    assert result.results[0].identity.status == "unchecked"
    assert verdicts(result)[("baseline_cnn", "test_accuracy")] != "identical"
    assert "not checked (GPU run without --deterministic)" in render_text(result)


def test_sides_without_a_common_seed_are_not_paired(tmp_path):
    a = write_result_set(tmp_path / "a", seeds=[0, 1, 2], variants=["baseline_cnn"])
    b = write_result_set(tmp_path / "b", seeds=[3, 4, 5], variants=["baseline_cnn"], rng=4)
    result = compare([a], [b])
    assert result.results[0].identity.status == "unpaired"
    assert verdicts(result)[("baseline_cnn", "test_accuracy")] in ("unchanged", "inconclusive")


# ---------------------------------------------------------------- unusable input: exit 2



def test_a_seed_twice_on_one_side_is_refused_unless_allowed(tmp_path, capsys):
    first = write_result_set(tmp_path / "a", seeds=[0, 1], variants=["baseline_cnn"], rng=1)
    second = write_result_set(tmp_path / "b", seeds=[1, 2], variants=["baseline_cnn"], rng=2)
    other = write_result_set(tmp_path / "c", variants=["baseline_cnn"], rng=3)
    assert main(["compare", str(first), str(second), "--candidate", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{str(second / 'runs.csv')!r}: line 2: baseline_cnn seed 1" in err
    assert f"{str(first / 'runs.csv')!r}: line 3" in err
    assert main(["compare", str(first), str(second), "--candidate", str(other),
                 "--allow-duplicates"]) in (0, 1)


def test_step_time_disagreeing_with_epochs_csv_is_refused_naming_file_and_line(
        tmp_path, capsys):
    damaged = write_result_set(tmp_path / "a", variants=["baseline_cnn"])
    good = write_result_set(tmp_path / "b", variants=["baseline_cnn"], rng=5)
    runs_csv = damaged / "runs.csv"
    with open(runs_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[1]["step_time_ms"] = repr(float(rows[1]["step_time_ms"]) * 10)
    # A consistent row (its check recomputed), so only the step-time rule can refuse it.
    rows[1]["row_sha256"] = row_check([v for k, v in rows[1].items() if k != "row_sha256"])
    with open(runs_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    out_json = tmp_path / "verdicts.json"
    assert main(["compare", str(good), str(damaged), "--json", str(out_json)]) == 2
    err = capsys.readouterr().err
    assert f"{str(runs_csv)!r}: line 3: step_time_ms" in err and "epochs.csv" in err
    assert not out_json.exists()


def test_synthetic_against_real_is_refused(tmp_path, capsys):
    real = write_result_set(tmp_path / "a", dataset="real", variants=["baseline_cnn"])
    synthetic = write_result_set(tmp_path / "b", dataset="synthetic", variants=["baseline_cnn"])
    with pytest.raises(UsageError, match="dataset: real .* vs synthetic"):
        compare([real], [synthetic])
    assert main(["compare", str(real), str(synthetic)]) == 2


# ---------------------------------------------------------------- the JSON


def test_json_has_one_object_per_variant_and_metric_with_the_documented_keys(base, tmp_path):
    slower = copy_result_set(base, tmp_path, step_scale=2.0, tf_version="2.22.0")
    path = tmp_path / "verdicts.json"
    assert main(["compare", str(base), str(slower), "--json", str(path)]) == 1
    document = json.loads(path.read_text())
    assert document["schema"] == "catsdogs-verdicts/1" and document["exit_code"] == 1
    records = document["verdicts"]
    assert {(r["variant"], r["metric"]) for r in records} == {
        (v, m) for v in VARIANTS for m in ("test_accuracy", "step_time")}
    keys = {"variant", "metric", "unit", "n_base", "n_candidate", "analysis", "n_pairs",
            "base_estimate",
            "candidate_estimate", "change", "interval", "interval_level", "p", "p_adjusted",
            "df", "threshold", "detectable", "seeds_needed", "verdict", "reasons",
            "identity", "base", "candidate"}
    for record in records:
        assert set(record) == keys
        assert record["verdict"] in ALLOWED and record["reasons"]
        assert (record["n_base"], record["n_candidate"]) == (3, 3)
        assert record["candidate"]["tf_versions"] == ["2.22.0"]
        assert record["base"]["keras_versions"] == ["3.15.1"]
    assert {r["analysis"] for r in records if r["metric"] == "step_time"} == {"unpaired"}
    assert {r["analysis"] for r in records if r["metric"] == "test_accuracy"} == {None}
    step = next(r for r in records if r["metric"] == "step_time")
    assert step["change"] == pytest.approx(2.0) and step["interval"][0] > 1.1
    assert step["p_adjusted"] >= step["p"] and step["threshold"] == pytest.approx(1.1)
    doc = (Path(__file__).parents[1] / "docs" / "verdicts.md").read_text()
    assert all(f"`{key}`" in doc for key in keys)


# ---------------------------------------------------------------- edges


def test_a_variant_whose_candidate_runs_all_failed_is_a_regression(tmp_path):
    a = write_result_set(tmp_path / "a", variants=VARIANTS[:2])
    b = write_result_set(tmp_path / "b", variants=VARIANTS[:2],
                         failed=[("augmented_cnn", seed) for seed in (0, 1, 2)])
    result = compare([a], [b])
    assert result.exit_code() == 1
    assert "REGRESSION all 3 candidate runs of augmented_cnn failed" in render_text(result)


def test_variants_on_one_side_only_are_listed_as_not_compared(tmp_path):
    a = write_result_set(tmp_path / "a", variants=VARIANTS[:3])
    b = write_result_set(tmp_path / "b", variants=VARIANTS[1:])
    result = compare([a], [b])
    assert {item.variant for item in result.results} == set(VARIANTS[1:3])
    assert result.not_compared == ["baseline_cnn (only in base)",
                                   "transfer_mobilenetv2 (only in candidate)"]


# ---------------------------------------------------------------- what was compared


def test_a_verdict_over_smoke_runs_says_so_before_any_verdict(tmp_path, capsys):
    """Synthetic data, --limit or < 5 epochs: the verdict is about the pipeline, and the
    text, the JSON and the HTML fragment say it first, with the data that was compared."""
    from catsdogs.verdicts.output import compare_html as render_html

    smoke = write_result_set(tmp_path / "a", dataset="synthetic", epochs=3, rng=1)
    other = copy_result_set(smoke, tmp_path / "b", tf_version="2.22.0")
    path = tmp_path / "verdicts.json"
    main(["compare", str(smoke), str(other), "--json", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("data: SYNTHETIC images (not photographs)")
    assert lines[2].endswith("; 3 epochs")
    assert lines[3].startswith("warning: SMOKE RUN")
    assert json.loads(path.read_text())["scope"] == lines[2:4]
    assert "warning: SMOKE RUN" in render_html(compare([smoke], [other]))


def test_a_verdict_over_full_real_runs_names_the_data_and_warns_of_nothing(base):
    result = compare([base], [base])
    (line,) = result.scope
    assert line.startswith("data: real cats_and_dogs_filtered (official, fingerprint ")
    assert line.endswith("all images; 5 epochs")
    assert "warning:" not in render_text(result)

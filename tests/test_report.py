"""`catsdogs report`: tables in four formats with provenance, figures, and refusals.

Result sets come from tests/resultsets.py (test data written through the real writer).
Rendering figures costs about a second, so one report is rendered per module and the
tests read its files."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from resultsets import TEST_HOST, environment, write_result_set

from catsdogs.errors import DataError, ResultsError, UsageError
from catsdogs.models import VARIANTS
from catsdogs.record import RUN_COLUMNS, ResultSet
from catsdogs.report import (
    CHANCE_LABEL,
    check_comparable,
    load_result_sets,
    render_report,
    render_table,
    sample_grid,
    summary_table,
)

SET_FILES = ("runs.csv", "epochs.csv", "environment.json")
FIGURES = ("accuracy_curves", "test_accuracy_bars", "step_times")


def _digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in SET_FILES}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One real-data result set, reported into its own folder (the default)."""
    result_set = write_result_set(tmp_path_factory.mktemp("results"))
    before = _digests(result_set)
    text = render_report([result_set], fmt="github")
    return result_set, text, before


@pytest.fixture
def small_set(tmp_path) -> Path:
    """The smallest valid set, for tests that damage it."""
    return write_result_set(tmp_path, variants=["baseline_cnn"], seeds=[0], epochs=2)


# ---------------------------------------------------------------- what a report writes


def test_report_writes_tables_and_figures_and_leaves_the_csvs_alone(rendered):
    result_set, _, before = rendered
    for name in ("table.md", "table.tex", "table.txt", "table.csv"):
        assert (result_set / name).stat().st_size > 0, name
    for stem in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (result_set / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix
    assert _digests(result_set) == before


def test_returned_text_is_the_requested_table_and_says_what_was_written(rendered):
    result_set, text, _ = rendered
    assert text.startswith((result_set / "table.md").read_text().rstrip("\n"))
    assert f"wrote into {result_set}: table.md, table.tex, table.txt" in text
    assert "accuracy_curves.png" in text and "step_times.pdf" in text
    assert "skipped: no dataset folder" in text  # no data dir recorded, none given


def test_markdown_table_has_every_variant_and_the_50_percent_baseline(rendered):
    result_set, _, _ = rendered
    rows = [line for line in (result_set / "table.md").read_text().splitlines()
            if line.startswith("|")]
    names = [row.split("|")[1].strip() for row in rows[2:]]
    assert names == [*VARIANTS, CHANCE_LABEL]
    for row in rows[2:-1]:
        assert "± " in row and "(n=3)" in row, row
    assert "| 50.0 " in rows[-1]


def test_latex_table_uses_booktabs_and_keeps_provenance_in_comments(rendered):
    result_set, _, _ = rendered
    tex = (result_set / "table.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "% TensorFlow: 2.21.0" in tex and "% seeds: 0, 1, 2" in tex
    assert "±" not in tex and "$\\pm$" in tex  # pdflatex-safe
    after_table = tex.split("\\end{tabular}")[1].strip().splitlines()
    assert after_table and all(line.startswith("%") for line in after_table)


def test_provenance_footer_traces_the_numbers(rendered):
    result_set, _, _ = rendered
    footer = (result_set / "table.txt").read_text().split("Provenance:")[1]
    for fragment in ("TensorFlow: 2.21.0", "Keras: 3.15.1", "device: cpu",
                     "dataset: real, fingerprint 7ecc68776f75 (official)", "seeds: 0, 1, 2",
                     "epochs: 5", "git commit: test00000000", f"hosts: {TEST_HOST}",
                     f"result sets: {result_set.name}"):
        assert fragment in footer, fragment


def test_csv_table_carries_provenance_as_columns(rendered):
    result_set, _, _ = rendered
    table = pd.read_csv(result_set / "table.csv", dtype=str)
    assert list(table["variant"]) == [*VARIANTS, CHANCE_LABEL]
    assert set(table["tensorflow"]) == {"2.21.0"}
    assert set(table["result_sets"]) == {result_set.name}
    assert table["dataset"].str.contains("7ecc68776f75").all()
    assert list(table["n_ok"][:4]) == ["3"] * 4


# ---------------------------------------------------------------- merging and counting


def test_shards_from_two_result_sets_merge_into_one_table(tmp_path):
    first = write_result_set(tmp_path / "runner1", seeds=[0, 1], rng=1)
    second = write_result_set(tmp_path / "runner2", seeds=[2], rng=2)
    runs, _, environments = load_result_sets([first, second])
    assert len(runs) == 12 and len(environments) == 2
    summary = summary_table(runs)
    assert list(summary["n_ok"][:4]) == [3] * 4
    assert list(summary["seeds_ok"][:4]) == ["0 1 2"] * 4
    table = render_table(runs, environments, "plain")
    assert f"result sets: {first.name}, {second.name}" in table
    assert "seeds: 0, 1, 2" in table and "more than once" not in table


def test_a_seed_recorded_twice_is_flagged(tmp_path):
    first = write_result_set(tmp_path / "runner1", variants=["baseline_cnn"], seeds=[0, 1])
    rerun = write_result_set(tmp_path / "runner2", variants=["baseline_cnn"], seeds=[1])
    runs, _, environments = load_result_sets([first, rerun])
    table = render_table(runs, environments, "plain")
    assert "recorded more than once (each counted): baseline_cnn seed 1 x2" in table


def test_failed_runs_are_counted_but_not_averaged(tmp_path):
    result_set = write_result_set(tmp_path, failed=[("augmented_cnn", 2)])
    runs, _, environments = load_result_sets([result_set])
    row = summary_table(runs).set_index("variant").loc["augmented_cnn"]
    assert (row["n_ok"], row["n_failed"]) == (2, 1)
    ok = runs[(runs["variant"] == "augmented_cnn") & (runs["status"] == "ok")]
    assert row["test_accuracy_pct_mean"] == pytest.approx(ok["test_accuracy"].mean() * 100)
    table = render_table(runs, environments, "github")
    assert "augmented_cnn seed 2: ResourceExhaustedError" in table


def test_the_same_result_set_given_twice_is_refused(small_set):
    with pytest.raises(UsageError, match="given twice"):
        load_result_sets([small_set, small_set])


# ---------------------------------------------------------------- comparability


def test_mixing_synthetic_with_real_is_refused_before_anything_is_written(tmp_path):
    real = write_result_set(tmp_path / "a", dataset="real")
    synthetic = write_result_set(tmp_path / "b", dataset="synthetic")
    with pytest.raises(UsageError, match=r"dataset: real \(.*\) vs synthetic") as caught:
        render_report([real, synthetic], out=tmp_path / "out")
    assert "\n" not in str(caught.value) and "--allow-mixed" in str(caught.value)
    assert not (tmp_path / "out").exists() and not (real / "table.md").exists()


@pytest.mark.parametrize("change", [{"epochs": 3}, {"limit": 100},
                                    {"fingerprint": "ab" * 32, "fingerprint_known": False}],
                         ids=["epochs", "limit", "unofficial fingerprint"])
def test_runs_of_other_settings_are_refused(tmp_path, change):
    a = write_result_set(tmp_path / "a", variants=["baseline_cnn"])
    b = write_result_set(tmp_path / "b", variants=["baseline_cnn"], **change)
    runs, _, _ = load_result_sets([a, b])
    with pytest.raises(UsageError, match="not comparable"):
        check_comparable(runs)


def test_allow_mixed_splits_and_marks_the_mixed_rows(tmp_path):
    real = write_result_set(tmp_path / "a", dataset="real", variants=VARIANTS[:2])
    synthetic = write_result_set(tmp_path / "b", dataset="synthetic", variants=VARIANTS[:2])
    runs, _, environments = load_result_sets([real, synthetic])
    text = render_table(runs, environments, "plain", allow_mixed=True)
    rows = [line for line in text.splitlines() if line.startswith(VARIANTS[:2])]
    assert len(rows) == 4 and all("†" in row for row in rows)
    assert any("dataset=real" in row for row in rows)
    assert any("dataset=synthetic" in row for row in rows)
    assert "MIXED, not comparable: dataset: real" in text
    assert "smoke run" in text  # synthetic numbers are never presented as results


# ---------------------------------------------------------------- bad inputs


def _rewrite_runs(result_set: Path, change) -> None:
    path = result_set / "runs.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns, rows = change(list(rows[0]), rows)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _empty_folder(path: Path) -> Path:
    path.mkdir()
    return path


def _set_environment_schema(result_set: Path, version: int) -> None:
    path = result_set / "environment.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), schema_version=version)))


BAD_INPUTS = {
    # name: (damage(result set) -> path to pass, fragments of the message)
    "not a result set": (lambda s: _empty_folder(s.parent / "not-a-set"),
                         ["is not a result set", "runs.csv", "environment.json"]),
    "missing column": (
        lambda s: (_rewrite_runs(s, lambda c, r: ([x for x in c if x != "test_accuracy"], r)),
                   s)[-1], ["runs.csv", "missing column(s) test_accuracy"]),
    "unknown schema_version in runs.csv": (
        lambda s: (_rewrite_runs(s, lambda c, r: (c, [dict(x, schema_version="99") for x in r])),
                   s)[-1], ["runs.csv", "unknown schema_version '99'", "version(s) 1"]),
    "unknown schema_version in environment.json": (
        lambda s: (_set_environment_schema(s, 7), s)[-1],
        ["environment.json", "unknown schema_version '7'"]),
    "empty runs.csv": (lambda s: ((s / "runs.csv").write_text(",".join(RUN_COLUMNS) + "\n"),
                                  s)[-1], ["runs.csv", "no runs recorded"]),
    "not a number": (
        lambda s: (_rewrite_runs(s, lambda c, r: (c, [dict(x, step_time_ms="fast") for x in r])),
                   s)[-1], ["runs.csv", "step_time_ms = 'fast'", "expected a number"]),
    "accuracy in percent": (
        lambda s: (_rewrite_runs(s, lambda c, r: (c, [dict(x, test_accuracy="71.9") for x in r])),
                   s)[-1], ["runs.csv", "test_accuracy", "fraction in [0, 1]"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_result_set_is_one_line_naming_the_path(case, small_set):
    damage, fragments = BAD_INPUTS[case]
    given = damage(small_set)
    with pytest.raises(ResultsError) as caught:
        render_report([given])
    message = str(caught.value)
    assert "\n" not in message and str(given) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_new_empty_result_set_has_no_runs_to_report(tmp_path):
    env = environment(tf_version="2.21.0", keras_version="3.15.1", dataset="real",
                      fingerprint="x", fingerprint_known=False, device="cpu", gpu_name="")
    empty = ResultSet.create(tmp_path, env).path
    with pytest.raises(ResultsError, match="no runs recorded"):
        load_result_sets([empty])


# ---------------------------------------------------------------- the post's figures


def _fake_dataset(root: Path, per_class: int = 3) -> Path:
    """cats_and_dogs_filtered's layout with plain-colour JPEGs (dogs blue, cats red)."""
    from PIL import Image

    for cls, colour in (("dogs", (30, 60, 220)), ("cats", (220, 50, 30))):
        folder = root / "train" / cls
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (48, 40), colour).save(folder / f"{cls[:-1]}.{i}.jpg")
    return root


def test_sample_grid_shows_three_dogs_above_three_cats(tmp_path):
    data = _fake_dataset(tmp_path / "data")
    written = sample_grid(data, tmp_path)
    assert [p.name for p in written] == ["sample_grid.png", "sample_grid.pdf"]
    from PIL import Image

    pixels = Image.open(written[0]).convert("RGB")
    width, height = pixels.size
    top = pixels.getpixel((width // 2, int(height * 0.3)))
    bottom = pixels.getpixel((width // 2, int(height * 0.75)))
    assert top[2] > top[0] and bottom[0] > bottom[2]  # blue dogs on top, red cats below


def test_sample_grid_needs_three_images_per_class(tmp_path):
    data = _fake_dataset(tmp_path / "data", per_class=2)
    with pytest.raises(DataError, match="expected at least 3"):
        sample_grid(data, tmp_path)


def test_a_data_dir_without_train_folder_is_refused(small_set, tmp_path):
    with pytest.raises(DataError, match="no train/ folder"):
        render_report([small_set], data_dir=tmp_path / "nowhere")


@pytest.mark.slow
def test_report_draws_the_augmentation_preview_from_a_recorded_data_dir(tmp_path):
    """Imports TensorFlow (the preview runs the models' own augmentation layers)."""
    data = _fake_dataset(tmp_path / "data")
    result_set = write_result_set(tmp_path, variants=["augmented_cnn"], seeds=[0], epochs=2,
                                  data_dir=str(data))
    text = render_report([result_set], out=tmp_path / "out")
    for name in ("sample_grid.png", "augmentation_preview.png", "augmentation_preview.pdf"):
        assert (tmp_path / "out" / name).stat().st_size > 1000, name
    assert "skipped" not in text

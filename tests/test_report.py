"""`catsdogs report`: tables in four formats with provenance, figures, and refusals.

Result sets come from tests/resultsets.py (test data written through the real writer).
Rendering figures costs about a second, so one report is rendered per module and the
tests read its files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from figure_text import figure_text
from report_sets import (
    FROZEN_RANDOM_COUNTS,
    SCRATCH_COUNTS,
    nan_accuracy,
    without_pretrained_weights,
)
from resultsets import TEST_HOST, environment, write_result_set

from catsdogs.cli import main
from catsdogs.errors import DataError, ResultsError, UsageError
from catsdogs.models import VARIANTS
from catsdogs.report.build import default_out, render_report
from catsdogs.report.figures import draw_all
from catsdogs.report.samples import sample_grid
from catsdogs.report.summary import summary_table
from catsdogs.report.tables import render_table
from catsdogs.resultset.comparable import check_comparable
from catsdogs.resultset.load import load_result_sets
from catsdogs.resultset.schema import RUN_COLUMNS
from catsdogs.resultset.store import ResultSet

SET_FILES = ("runs.csv", "epochs.csv", "environment.json")
FIGURES = ("accuracy_curves", "test_accuracy_bars", "step_times")
LABELS = ["baseline_cnn (model1)", "augmented_cnn (model2)", "preprocessed_cnn (model3)",
          "transfer_mobilenetv2 (model4), ImageNet-pretrained base"]


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One real-data result set, reported into the default folder."""
    result_set = write_result_set(tmp_path_factory.mktemp("results"))
    before = _digests(result_set)
    text = render_report([result_set], fmt="github")
    return result_set, text, before, default_out([result_set])


@pytest.fixture
def small_set(tmp_path) -> Path:
    """The smallest valid set, for tests that damage it."""
    return write_result_set(tmp_path, variants=["baseline_cnn"], seeds=[0], epochs=2)


# ---------------------------------------------------------------- what a report writes


def test_report_goes_beside_runs_and_leaves_the_result_set_exactly_as_written(rendered):
    result_set, _, before, folder = rendered
    assert folder == result_set.parents[1] / "report" / result_set.name
    assert _digests(result_set) == before  # nothing changed, nothing added
    assert set(before) - {".lock"} == set(SET_FILES)  # the writer's lock file aside
    for name in ("table.md", "table.tex", "table.txt", "table.csv", "index.html"):
        assert (folder / name).stat().st_size > 0, name
    for stem in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (folder / f"{stem}{suffix}").stat().st_size > 1000, stem + suffix
    assert not [path for path in folder.iterdir() if path.name.startswith(".")]  # no staging


def test_returned_text_is_the_requested_table_and_says_what_was_written(rendered):
    _, text, _, folder = rendered
    assert text.startswith((folder / "table.md").read_text().rstrip("\n"))
    assert f"wrote into {folder}: accuracy_curves.pdf, accuracy_curves.png, index.html" in text
    assert "step_times.pdf" in text and "table.tex" in text
    assert "skipped: no dataset folder" in text  # no data dir recorded, none given


def test_markdown_table_has_every_variant_with_interval_and_n(rendered):
    _, _, _, folder = rendered
    rows = [line for line in (folder / "table.md").read_text().splitlines()
            if line.startswith("|")]
    names = [row.split("|")[1].strip() for row in rows[2:]]
    assert names == LABELS
    header = [cell.strip() for cell in rows[0].split("|")[1:-1]]
    assert header[:6] == ["model", "n", "test acc. %", "val. acc. %", "train acc. %",
                          "gap train−val (pts)"]
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[1] == "3" and all(" ± " in cell for cell in cells[2:7]), row
        assert re.fullmatch(r"\d+ \(\d+–\d+\)|\d+\.\d \(\d+\.\d–\d+\.\d\)", cells[7]), cells[7]


def test_interval_is_the_t_interval_of_the_seeds(rendered):
    """The ± half-width is t(0.975, n-1) s / sqrt(n) of the per-seed accuracies."""
    from scipy.stats import t

    result_set, _, _, _ = rendered
    runs, _, _ = load_result_sets([result_set])
    summary = summary_table(runs).set_index("variant")
    values = runs.loc[runs["variant"] == "augmented_cnn", "test_accuracy"].astype(float) * 100
    half = t.ppf(0.975, 2) * values.std(ddof=1) / len(values) ** 0.5
    row = summary.loc["augmented_cnn"]
    assert row["test_accuracy_pct_ci95"] == pytest.approx(half)
    assert row["test_accuracy_pct_mean"] == pytest.approx(values.mean())
    assert row["test_accuracy_pct_std"] == pytest.approx(values.std(ddof=1))


def test_latex_table_is_a_complete_float_with_provenance_in_the_caption(rendered):
    _, _, _, folder = rendered
    tex = (folder / "table.tex").read_text()
    for fragment in ("\\begin{table}", "\\caption{", "\\label{tab:catsdogs-", "\\toprule",
                     "\\midrule", "\\bottomrule", "S[table-format=", "\\end{table}"):
        assert fragment in tex, fragment
    caption = tex.split("\\caption{", 1)[1].split("\n", 1)[0]
    for fragment in ("real cats\\_and\\_dogs\\_filtered (official", "5 epochs", "seeds 0, 1, 2",
                     "TensorFlow 2.21.0", "Keras 3.15.1", "cpu", "95\\,\\% $t$-interval"):
        assert fragment in caption, fragment
    assert "±" not in tex.split("\\end{table}")[0]  # pdflatex-safe inside the float
    assert "model4 (pretrained) & 3 &" in tex


def test_provenance_footer_traces_the_numbers(rendered):
    _, _, _, folder = rendered
    footer = (folder / "table.txt").read_text().split("Provenance:")[1]
    for fragment in ("TensorFlow: 2.21.0", "Keras: 3.15.1", "device: cpu",
                     "dataset: real cats_and_dogs_filtered (official, fingerprint 7ecc68776f75)"
                     ", all images", "seeds: 0, 1, 2", "epochs: 5", "git commit: test00000000",
                     f"hosts: {TEST_HOST}", "95% t-interval"):
        assert fragment in footer, fragment


def test_csv_is_tidy_and_round_trips_through_pandas(rendered):
    result_set, _, _, folder = rendered
    table = pd.read_csv(folder / "table.csv")
    assert list(table["variant"]) == list(VARIANTS)  # one row per variant, no pseudo-row
    for column in ("n", "n_runs", "n_failed", "n_nan", "params_total", "params_trainable",
                   "epochs"):
        assert table[column].dtype.kind == "i", (column, table[column].dtype)
    assert set(table["chance_pct"]) == {50.0}
    for column in ("seeds", "tf_versions", "result_sets", "git_commits"):
        assert all(isinstance(json.loads(cell), list) for cell in table[column]), column
    assert json.loads(table["seeds"][0]) == [0, 1, 2]
    assert json.loads(table["result_sets"][0]) == [result_set.name]
    assert table["dataset_official"].dtype == bool and table["dataset_official"].all()
    assert list(table["model4_base"].fillna("")) == ["", "", "", "ImageNet-pretrained base"]
    again = pd.read_csv(io.StringIO(table.to_csv(index=False)))
    pd.testing.assert_frame_equal(table, again)


# ---------------------------------------------------------------- merging and counting


def test_shards_from_two_result_sets_merge_into_one_table(tmp_path):
    first = write_result_set(tmp_path / "runner1", seeds=[0, 1], rng=1)
    second = write_result_set(tmp_path / "runner2", seeds=[2], rng=2)
    runs, _, environments = load_result_sets([first, second])
    assert len(runs) == 12 and len(environments) == 2
    summary = summary_table(runs)
    assert list(summary["n"][:4]) == [3] * 4
    assert list(summary["seeds"][:4]) == ["[0, 1, 2]"] * 4
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
    assert (row["n"], row["n_runs"], row["n_failed"], row["n_nan"]) == (2, 3, 1, 0)
    ok = runs[(runs["variant"] == "augmented_cnn") & (runs["status"] == "ok")]
    assert row["test_accuracy_pct_mean"] == pytest.approx(ok["test_accuracy"].mean() * 100)
    table = render_table(runs, environments, "github")
    assert "augmented_cnn seed 2: ResourceExhaustedError" in table


def test_a_nan_accuracy_is_left_out_of_n_and_the_mean_and_the_table_says_so(tmp_path):
    result_set = nan_accuracy(write_result_set(tmp_path), "augmented_cnn", 1)
    runs, _, environments = load_result_sets([result_set])
    row = summary_table(runs).set_index("variant").loc["augmented_cnn"]
    kept = runs[(runs["variant"] == "augmented_cnn") & (runs["seed"] != 1)]
    assert (row["n"], row["n_nan"], row["n_failed"]) == (2, 1, 0)
    assert row["test_accuracy_pct_mean"] == pytest.approx(kept["test_accuracy"].mean() * 100)
    assert row["val_accuracy_pct_mean"] == pytest.approx(kept["val_accuracy"].mean() * 100)
    for fmt in ("github", "plain"):
        table = render_table(runs, environments, fmt)
        line = next(line for line in table.splitlines() if "NaN accuracy" in line)
        assert "left out of n and the means" in line and "augmented_cnn seed 1" in line
    assert "Left out of n and the means (NaN accuracy): augmented\\_cnn seed 1" in \
        render_table(runs, environments, "latex")


@pytest.mark.parametrize("counts,long,short", [
    (SCRATCH_COUNTS, "NOT pretrained: base trained from scratch", "not pretrained"),
    (FROZEN_RANDOM_COUNTS, "NOT pretrained: frozen random base, chance by construction",
     "frozen random base")], ids=["trained from scratch", "frozen random (older sets)"])
def test_model4_without_pretrained_weights_is_labelled_in_every_output(tmp_path, counts,
                                                                        long, short):
    result_set = without_pretrained_weights(write_result_set(tmp_path, seeds=[0, 1]), counts)
    render_report([result_set])
    folder = default_out([result_set])
    md = (folder / "table.md").read_text()
    assert f"| transfer_mobilenetv2 (model4), {long} |" in md
    assert f"warning**: model4: {long}" in md
    tex = (folder / "table.tex").read_text()
    assert f"model4 ({short}) &" in tex and f"\\textbf{{model4: {long}.}}" in tex
    assert f"transfer_mobilenetv2 (model4), {long}" in (folder / "table.txt").read_text()
    assert list(pd.read_csv(folder / "table.csv")["model4_base"])[-1] == long
    assert f"model4: {long}" in (folder / "index.html").read_text()
    runs, epochs, _ = load_result_sets([result_set])
    for stem, figure in draw_all(runs, epochs).items():
        text = figure_text(figure)
        assert f"model4: {long}" in text, stem  # in the title's warning line
        assert f"model4 ({short})" in text, stem  # and on the panel or tick label


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
    assert not (tmp_path / "out").exists() and not default_out([real, synthetic]).exists()


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
    assert "SMOKE RUN" in text  # synthetic numbers are never presented as results


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


def test_model4_with_and_without_pretrained_weights_never_share_a_row(tmp_path):
    pretrained = write_result_set(tmp_path / "a", variants=["transfer_mobilenetv2"], seeds=[0])
    scratch = without_pretrained_weights(
        write_result_set(tmp_path / "b", variants=["transfer_mobilenetv2"], seeds=[0]))
    runs, _, environments = load_result_sets([pretrained, scratch])
    with pytest.raises(UsageError, match="model4 base of transfer_mobilenetv2: "
                                         "ImageNet-pretrained base .* vs NOT pretrained"):
        check_comparable(runs)
    rows = [line for line in render_table(runs, environments, "plain", allow_mixed=True)
            .splitlines() if line.startswith("transfer_mobilenetv2")]
    assert len(rows) == 2 and "[base=ImageNet-pretrained base]" in rows[0]
    assert "[base=NOT pretrained: base trained from scratch]" in rows[1]


def test_report_with_a_baseline_puts_compares_verdicts_into_the_page(tmp_path):
    """`report CANDIDATE --baseline BASE`: index.html's comparison section carries the
    same verdicts `compare` gives (here a set against a copy of itself: identical)."""
    base = write_result_set(tmp_path / "base", variants=["baseline_cnn", "augmented_cnn"],
                            rng=11)
    candidate = write_result_set(tmp_path / "cand", variants=["baseline_cnn", "augmented_cnn"],
                                 rng=11)
    out = tmp_path / "out"
    assert main(["report", str(candidate), "--baseline", str(base), "--out", str(out),
                 "--no-samples"]) == 0
    page = (out / "index.html").read_text()
    section = page[page.index('<section id="verdicts">'):page.index("</section>")]
    assert "<th>verdict</th>" in section and "identical" in section
    assert "no baseline" not in section.lower()
    assert "baseline_cnn" in section and "augmented_cnn" in section

"""`catsdogs trend`: releases in version order, the first release that changed, numerics
changes and duplicate seeds. Result sets are TEST DATA written through the real writer;
newer "releases" are copies of an older set with known changes and another tf_version."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from resultsets import copy_result_set, write_result_set
from test_compare import copy_editing

from catsdogs.cli import main
from catsdogs.models import VARIANTS
from catsdogs.verdicts.output import trend_series
from catsdogs.verdicts.output import trend_text as render_text
from catsdogs.verdicts.trend import build_trend, version_key


@pytest.fixture(scope="module")
def oldest(tmp_path_factory) -> Path:
    return write_result_set(tmp_path_factory.mktemp("old"), tf_version="2.19.0",
                            accuracy_std=0.02, step_noise=0.05, run_noise=0.03, rng=20)


def test_version_order_is_numeric():
    versions = ["2.21.0", "2.9.0", "2.16.2", "2.21.0rc1", "nightly"]
    assert sorted(versions, key=version_key) == ["2.9.0", "2.16.2", "2.21.0rc1", "2.21.0",
                                                 "nightly"]


def test_one_release_says_no_trend(oldest, tmp_path, capsys):
    assert main(["trend", str(oldest), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "one release (TF 2.19.0): no trend" in out
    assert (tmp_path / "trend.png").stat().st_size > 1000 and (tmp_path / "trend.pdf").exists()


def test_releases_in_version_order_and_the_first_that_changed(oldest, tmp_path):
    """2.19.0 -> 2.20.0 (the same runs: identical) -> 2.21.0 (augmented_cnn twice as
    slow): the step is at 2.21.0, for augmented_cnn's step time only."""
    same = copy_result_set(oldest, tmp_path / "a", tf_version="2.20.0")
    slower = copy_result_set(same, tmp_path / "b", tf_version="2.21.0", step_scale=2.0,
                             variants=["augmented_cnn"])
    built = build_trend([slower, oldest, same])  # out of order on purpose
    assert [r.version for r in built.releases] == ["2.19.0", "2.20.0", "2.21.0"]
    assert built.first_change("augmented_cnn") == ("2.21.0", ["step time regression"])
    for variant in VARIANTS:
        if variant != "augmented_cnn":
            assert built.first_change(variant) is None
        assert built.numerics_changed(variant) == []
    text = render_text(built)
    assert "augmented_cnn: first change at TF 2.21.0 (step time regression)" in text
    assert "releases in order: 2.19.0 < 2.20.0 < 2.21.0" in text


def test_a_release_that_changed_numerics_is_marked(oldest, tmp_path):
    def nudge(row, epochs):
        row["tf_version"] = "2.20.0"
        if row["variant"] == "baseline_cnn" and row["seed"] == "0":
            epochs[2]["loss"] = repr(float(epochs[2]["loss"]) * 1.001)

    newer = copy_editing(oldest, tmp_path, nudge)
    built = build_trend([oldest, newer])
    (marked,) = built.numerics_changed("baseline_cnn")
    assert marked.startswith("2.20.0 (diverged at epoch 3 (loss, ")
    assert built.numerics_changed("augmented_cnn") == []


def test_a_seed_twice_in_one_release_is_refused_or_flagged(tmp_path, capsys):
    a = write_result_set(tmp_path / "a", seeds=[0, 1], variants=["baseline_cnn"], rng=1)
    b = write_result_set(tmp_path / "b", seeds=[1, 2], variants=["baseline_cnn"], rng=2)
    assert main(["trend", str(a), str(b), "--out", str(tmp_path)]) == 2
    assert "baseline_cnn seed 1 is already" in capsys.readouterr().err
    json_path = tmp_path / "trend.json"
    assert main(["trend", str(a), str(b), "--allow-duplicates", "--out", str(tmp_path),
                 "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    assert "4 DUPLICATE" in out and "baseline_cnn seed 1 x2 in TF 2.21.0" in out
    document = json.loads(json_path.read_text())
    assert document["duplicates"] == [{"variant": "baseline_cnn", "seed": 1, "count": 2,
                                       "version": "2.21.0"}]


def test_trend_json_carries_each_neighbour_comparison(oldest, tmp_path):
    newer = copy_result_set(oldest, tmp_path / "a", tf_version="2.20.0", step_scale=2.0)
    path = tmp_path / "trend.json"
    assert main(["trend", str(oldest), str(newer), "--out", str(tmp_path),
                 "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert document["command"] == "trend" and document["releases"] == ["2.19.0", "2.20.0"]
    assert len(document["verdicts"]) == 2 * len(VARIANTS)
    for record in document["verdicts"]:
        assert record["base"]["tf_versions"] == ["2.19.0"]
        assert record["candidate"]["tf_versions"] == ["2.20.0"]
    assert document["first_change"] == {variant: "2.20.0" for variant in VARIANTS}


def test_trend_by_default_writes_beside_runs_and_leaves_the_sets_as_written(tmp_path):
    """A result set is append-only: trend's figures go to report/trend_<set>/, and the
    set's files are byte for byte as the writer left them."""
    result_set = write_result_set(tmp_path / "results", tf_version="2.21.0", rng=3)
    before = {p.name: p.read_bytes() for p in result_set.iterdir()}
    assert main(["trend", str(result_set)]) == 0
    assert {p.name: p.read_bytes() for p in result_set.iterdir()} == before
    folder = result_set.parent.parent / "report" / f"trend_{result_set.name}"
    assert (folder / "trend.png").stat().st_size > 1000


def test_trend_out_into_a_result_set_is_refused(tmp_path, capsys):
    result_set = write_result_set(tmp_path / "results", tf_version="2.21.0", rng=4)
    assert main(["trend", str(result_set), "--out", str(result_set)]) == 2
    assert "is a result set" in capsys.readouterr().err


def test_trend_figure_says_what_it_shows_from_zero_with_the_tables_interval(oldest, tmp_path):
    """The figure carries its data scope, starts step time at zero, and draws accuracy
    with the same 95% t-interval the tables give (not ± sd)."""
    from figure_text import figure_text

    from catsdogs.report.figures import draw_trend
    from catsdogs.stats import t_interval

    newer = write_result_set(tmp_path / "new", tf_version="2.21.0", rng=21)
    built = build_trend([oldest, newer])
    series = trend_series(built)
    runs = pd.concat([r.side.runs for r in built.releases], ignore_index=True)
    figure = draw_trend([r.version for r in built.releases], series, runs)
    text = figure_text(figure)
    assert "TF 2.19.0, 2.21.0" in text and "seeds 0, 1, 2" in text and "epochs" in text
    acc_axis, step_axis = figure.axes[:2]
    assert step_axis.get_ylim()[0] == 0.0
    mean, half, n = t_interval(series["baseline_cnn"]["accuracy"][0])
    low, high = acc_axis.get_ylim()
    assert n == 3 and low <= mean - half and high >= mean + half


def test_a_trend_over_smoke_runs_says_so_first(tmp_path, capsys):
    """The same data line and warnings as compare (one function), above the table and in
    the JSON."""
    smoke = write_result_set(tmp_path / "a", dataset="synthetic", epochs=3, rng=1)
    newer = copy_result_set(smoke, tmp_path / "b", tf_version="2.22.0")
    trend = build_trend([smoke, newer])
    text = render_text(trend)
    assert text.splitlines()[:2] == trend.scope
    assert trend.scope[0].startswith("data: SYNTHETIC images") and \
        trend.scope[1].startswith("warning: SMOKE RUN")
    path = tmp_path / "trend.json"
    main(["trend", str(smoke), str(newer), "--out", str(tmp_path / "fig"), "--json", str(path)])
    assert json.loads(path.read_text())["scope"] == trend.scope

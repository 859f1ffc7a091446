"""What the figures promise, checked on the drawn figure objects: every interval end is
inside the axes, step time starts at zero, legends sit outside the axes, series stay
apart without colour, and the titles carry the data scope and the warnings."""

from __future__ import annotations

import pytest
from figure_text import figure_text
from resultsets import write_result_set

from catsdogs.models import VARIANTS
from catsdogs.report.figures import draw_all
from catsdogs.report.summary import summary_table
from catsdogs.resultset.load import load_result_sets


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Accuracies near 100% with a wide spread, so an interval reaches past 100; a
    --limit smoke set, so the titles must say so."""
    result_set = write_result_set(tmp_path_factory.mktemp("results"), variants=VARIANTS[:3],
                                  accuracy=0.97, accuracy_std=0.03, limit=20, epochs=3)
    runs, epochs, _ = load_result_sets([result_set])
    figures = draw_all(runs, epochs)
    for figure in figures.values():
        figure.canvas.draw()  # lay out, so extents are final
    return runs, figures


def test_axes_hold_every_interval_end(drawn):
    runs, figures = drawn
    summary = summary_table(runs)
    top = (summary["test_accuracy_pct_mean"] + summary["test_accuracy_pct_ci95"]).max()
    assert top > 100  # the case this test is about
    (axis,) = figures["test_accuracy_bars"].axes
    low, high = axis.get_ylim()
    assert low == 0 and high >= top
    (axis,) = figures["step_times"].axes
    assert axis.get_ylim()[0] == 0 and axis.get_ylim()[1] >= summary["step_time_ms_max"].max()


def test_legends_never_cover_the_axes(drawn):
    _, figures = drawn
    for stem, figure in figures.items():
        renderer = figure.canvas.get_renderer()
        legends = figure.legends
        assert legends, stem
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for axis in figure.axes:
                if axis.get_visible():
                    assert not box.overlaps(axis.get_window_extent(renderer)), stem


def test_series_differ_in_line_style_and_hatch_not_only_colour(drawn):
    _, figures = drawn
    for axis in figures["accuracy_curves"].axes:
        lines = [line for line in axis.get_lines() if line.get_label().endswith("(mean)")]
        assert len(lines) == 2
        assert lines[0].get_linestyle() != lines[1].get_linestyle()
        assert lines[0].get_marker() != lines[1].get_marker()
    (axis,) = figures["test_accuracy_bars"].axes
    hatches = [patch.get_hatch() for patch in axis.patches]
    assert len(hatches) == 3 and len(set(hatches)) == 3


def test_every_title_carries_the_scope_and_the_smoke_warning(drawn):
    _, figures = drawn
    for stem, figure in figures.items():
        title = " ".join(figure.get_suptitle().split())
        for fragment in ("real cats_and_dogs_filtered (official", "--limit 20 images per class",
                         "3 epochs", "seeds 0, 1, 2", "TF 2.21.0", "Keras 3.15.1", "SMOKE RUN"):
            assert fragment in title, (stem, fragment)
        assert "(n=3)" in figure_text(figure)

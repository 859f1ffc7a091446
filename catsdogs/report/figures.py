"""Figures from result sets: accuracy curves, test accuracy and step time, PNG and PDF.

They show the same numbers as the tables (mean and 95% t-interval over seeds; step time
median and min–max), read from `summary.summary_table`. Every title carries the data
scope and the warnings (smoke run, model4 not pretrained). Colours are Okabe–Ito
(colour-blind-safe), and each series also differs in line style, marker or hatch, so a
greyscale print stays readable. Legends sit outside the axes; axes are sized to every
error bar. Drawn on Agg canvases (no display, no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catsdogs.markup import figure_text
from catsdogs.report.canvas import new_figure, save_figure
from catsdogs.report.summary import summary_table
from catsdogs.resultset.comparable import GROUP, ok_runs, ordered_groups, with_groups
from catsdogs.resultset.describe import CHANCE_PCT, scope_line, warnings
from catsdogs.resultset.load import SOURCE
from catsdogs.resultset.machines import contended_note, uncontended
from catsdogs.stats import t_interval

#: Okabe & Ito's colour-blind-safe palette (blue, orange, green, purple, vermillion, …).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo")
CHANCE_LABEL = "50% baseline (chance)"


def titled(figure: Any, what: str, runs: pd.DataFrame) -> None:
    """Title = what the figure shows; subtitle = data scope; then every warning, each
    wrapped to the figure's width so no word is cut off at the edge."""
    import textwrap

    width = int(figure.get_figwidth() * 15)  # characters of 8.5 pt text per inch, about
    lines = [what, figure_text(scope_line(runs))] + [f"⚠ {figure_text(text)}"
                                                     for text in warnings(runs)]
    figure.suptitle("\n".join(textwrap.fill(line, width) for line in lines), fontsize=8.5,
                    ha="center")


def _chance_line(axis: Any) -> None:
    axis.axhline(CHANCE_PCT, linestyle=(0, (1, 2)), color="#555555", linewidth=1.2,
                 label=CHANCE_LABEL)


def _fit_limits(axis: Any, lows: list[float], highs: list[float], floor: float | None = None
                ) -> None:
    """y limits that contain every value and interval end, with a margin."""
    finite_lows = [v for v in lows if np.isfinite(v)] or [0.0]
    finite_highs = [v for v in highs if np.isfinite(v)] or [100.0]
    low, high = min(finite_lows), max(finite_highs)
    pad = max(2.0, 0.05 * (high - low))
    axis.set_ylim(floor if floor is not None else low - pad, high + pad)


def _epoch_stats(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per epoch: mean and 95% t-interval over seeds, in percent."""
    rows = []
    for epoch, part in data.groupby("epoch"):
        mean, half, n = t_interval(part[column].astype(float) * 100)
        rows.append({"epoch": int(epoch), "mean": mean, "half": half, "n": n})
    return pd.DataFrame(rows).sort_values("epoch") if rows else pd.DataFrame()


def draw_accuracy_curves(runs: pd.DataFrame, epochs: pd.DataFrame) -> Any:
    """One panel per table row: training (solid, filled band) and validation (dashed,
    hatched band) accuracy per epoch, mean and 95% t-interval over seeds, so the gap
    between them (the post's overfitting) is read inside one panel and no bands of
    different models overlap."""
    from matplotlib.ticker import MaxNLocator

    summary = summary_table(runs).set_index("variant")
    grouped = with_groups(runs)
    ok = ok_runs(grouped)[[SOURCE, "run_id", GROUP]]
    merged = epochs.merge(ok, on=[SOURCE, "run_id"], how="inner")
    groups = ordered_groups(grouped)
    ncols = min(len(groups), 4) or 1
    nrows = -(-len(groups) // ncols) or 1
    figure, axes = new_figure(max(7.0, 3.2 * ncols + 0.6), 3.0 * nrows + 1.5, nrows=nrows,
                              ncols=ncols, sharey=True, squeeze=False)
    lows, highs = [CHANCE_PCT], [CHANCE_PCT]
    series = (("accuracy", "training", PALETTE[0], "-", "o", None),
              ("val_accuracy", "validation", PALETTE[1], "--", "s", "////"))
    for axis, group in zip(axes.flat, groups):
        data = merged[merged[GROUP] == group]
        for column, name, colour, style, marker, hatch in series:
            stats = _epoch_stats(data, column)
            if stats.empty:
                continue
            x, low, high = stats["epoch"], stats["mean"] - stats["half"], \
                stats["mean"] + stats["half"]
            axis.plot(x, stats["mean"], color=colour, linestyle=style, marker=marker,
                      markersize=3 if len(x) <= 25 else 0, label=f"{name} (mean)")
            if stats["half"].notna().any():
                axis.fill_between(x, low, high, facecolor=colour if hatch is None else "none",
                                  alpha=0.25 if hatch is None else 1.0, hatch=hatch,
                                  edgecolor=colour if hatch else "none", linewidth=0,
                                  label=f"{name}: 95% interval over seeds")
            lows += list(low.fillna(stats["mean"]))
            highs += list(high.fillna(stats["mean"]))
        _chance_line(axis)
        row = summary.loc[group]
        axis.set_title(f"{figure_text(row['short_label'])}  (n={row['n']}"
                       + (", no interval)" if row["n"] < 2 else ")"), fontsize=9)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(groups):]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel("accuracy (%)")
    _fit_limits(axes.flat[0], lows, highs)
    if merged.empty:
        axes.flat[0].text(0.5, 0.5, "no epochs recorded", ha="center",
                          transform=axes.flat[0].transAxes)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3),
                  fontsize=8, frameon=False)
    titled(figure, "Training and validation accuracy per epoch (mean, 95% t-interval "
           "over seeds)", runs)
    return figure


def _legend_below(figure: Any, axis: Any) -> None:
    """One legend entry per label, below the axes, where it cannot cover data."""
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        figure.legend(unique.values(), unique.keys(), loc="outside lower center",
                      ncols=len(unique), fontsize=8, frameon=False)


def _beside(i: int, count: int) -> np.ndarray:
    """x positions for `count` seed points right of bar i's whisker, so neither hides
    the other."""
    return i + 0.25 + (np.linspace(-0.06, 0.06, count) if count > 1 else np.zeros(count))


def draw_test_accuracy_bars(runs: pd.DataFrame) -> Any:
    """Test accuracy per table row: the mean over seeds as a bar with its 95% t-interval
    (as in the tables), each seed as a point, and the 50% baseline."""
    summary = summary_table(runs)
    grouped = with_groups(ok_runs(runs))
    figure, axis = new_figure(max(5.0, 1.5 * len(summary) + 2.5), 4.6)
    x = np.arange(len(summary))
    means = summary["test_accuracy_pct_mean"].astype(float)
    halves = summary["test_accuracy_pct_ci95"].astype(float)
    highs = list(means + halves.fillna(0))
    for i, row in summary.iterrows():
        axis.bar(i, 0 if np.isnan(means[i]) else means[i], width=0.6,
                 color=PALETTE[i % len(PALETTE)],
                 hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.6, alpha=0.85)
        if not np.isnan(halves[i]):
            axis.errorbar(i, means[i], yerr=halves[i], color="black", capsize=5, linewidth=1.2,
                          label="95% t-interval over seeds")
        seeds = grouped.loc[grouped[GROUP] == row["variant"], "test_accuracy"].astype(float) * 100
        axis.scatter(_beside(i, len(seeds)), seeds, color="white", edgecolor="black", s=18,
                     zorder=3, label="one seed")
        highs += list(seeds)
    _chance_line(axis)
    axis.set_xticks(x, [f"{figure_text(row['short_label'])}\n(n={row['n']})"
                        for _, row in summary.iterrows()], fontsize=8)
    axis.set_xlim(-0.7, len(summary) - 0.3)  # room for the seed points right of each bar
    axis.set_ylabel("test accuracy (%)")
    _fit_limits(axis, [0.0], highs + [CHANCE_PCT], floor=0.0)
    axis.grid(axis="y", alpha=0.3)
    _legend_below(figure, axis)
    titled(figure, "Test accuracy: mean over seeds and 95% t-interval (none for n = 1)", runs)
    return figure


def _timed_label(row: dict[str, Any]) -> str:
    """'n=8; 2 contended left out' under a step-time bar: the seeds it timed, and the rest."""
    busy = int(row["n_step_contended"])
    timed = f"n={row['n'] - busy}"
    return f"{timed}; {contended_note(busy, True)}" if busy else timed


def draw_step_times(runs: pd.DataFrame) -> Any:
    """Median training-step time per table row (bar, from zero) with the min–max over
    seeds (whisker) and each seed's own median as a point, as in the tables: over the
    uncontended runs only, with the count of the others under the bar."""
    summary = summary_table(runs)
    grouped = with_groups(uncontended(ok_runs(runs)))
    figure, axis = new_figure(max(5.0, 1.5 * len(summary) + 2.5), 4.4)
    highs = [0.0]
    for i, row in summary.iterrows():
        median = row["step_time_ms_median"]
        if np.isnan(median):
            continue
        axis.bar(i, median, width=0.6, color=PALETTE[i % len(PALETTE)],
                 hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.6, alpha=0.85)
        if row["n"] - row["n_step_contended"] > 1:  # seeds timed
            axis.errorbar(i, median, yerr=[[median - row["step_time_ms_min"]],
                                           [row["step_time_ms_max"] - median]],
                          color="black", capsize=5, linewidth=1.2, label="min–max over seeds")
        seeds = grouped.loc[grouped[GROUP] == row["variant"], "step_time_ms"].dropna()
        axis.scatter(_beside(i, len(seeds)), seeds.astype(float), color="white",
                     edgecolor="black", s=18, zorder=3, label="one seed")
        highs += [row["step_time_ms_max"]]
    axis.set_xticks(range(len(summary)),
                    [f"{figure_text(row['short_label'])}\n({_timed_label(row)})"
                     for _, row in summary.iterrows()],
                    fontsize=8)
    axis.set_xlim(-0.7, len(summary) - 0.3)
    axis.set_ylabel("median training step (ms)")
    _fit_limits(axis, [0.0], highs, floor=0.0)
    axis.grid(axis="y", alpha=0.3)
    _legend_below(figure, axis)
    titled(figure, "Training step time: median over seeds (bar), min–max (whisker, n > 1)", runs)
    return figure


MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)))


def draw_trend(releases: Sequence[str], series: dict[str, dict[str, Any]],
               runs: pd.DataFrame) -> Any:
    """Two panels over releases (named as given: 'TF 2.21.0', 'jax 0.10.2'), per variant:
    test accuracy (mean and 95% t-interval over seeds, as in the tables) and step time
    (median over seeds, from zero, min–max whisker). `series[variant]`: {"x", "accuracy"
    (lists of per-seed values, %), "step" (lists of per-seed ms), "changed" (x of releases
    where its numerics changed)}.
    Variants differ by colour, marker and line style, so the figure reads in greyscale."""
    figure, (acc_axis, step_axis) = new_figure(11, 4.6, ncols=2)
    acc_lows, acc_highs, step_highs = [CHANCE_PCT], [CHANCE_PCT], [0.0]
    for i, (variant, data) in enumerate(series.items()):
        style = dict(color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)],
                     linestyle=LINESTYLES[i % len(LINESTYLES)], capsize=4,
                     label=figure_text(variant))
        offset = (i - (len(series) - 1) / 2) * 0.04  # side by side, whiskers never overlap
        x = np.asarray(data["x"], dtype=float) + offset
        intervals = [t_interval(values) for values in data["accuracy"]]
        means = np.asarray([m for m, _, _ in intervals])
        halves = np.nan_to_num(np.asarray([h for _, h, _ in intervals]))
        acc_axis.errorbar(x, means, yerr=halves, **style)
        acc_lows += list(means - halves)
        acc_highs += list(means + halves)
        medians = np.asarray([np.median(v) if len(v) else np.nan for v in data["step"]])
        lows = np.asarray([min(v) if len(v) else np.nan for v in data["step"]])
        highs = np.asarray([max(v) if len(v) else np.nan for v in data["step"]])
        step_axis.errorbar(x, medians, yerr=[medians - lows, highs - medians], **style)
        step_highs += list(highs)
        for changed in data["changed"]:
            acc_axis.annotate("numerics changed", (changed + offset, means[list(data["x"])
                              .index(changed)]), textcoords="offset points", xytext=(6, -12),
                              fontsize=7, color=style["color"])
    _chance_line(acc_axis)
    for axis, ylabel in ((acc_axis, "test accuracy (%): mean, 95% t-interval"),
                         (step_axis, "training step (ms): median, min–max, uncontended seeds")):
        axis.set_xticks(range(len(releases)), [figure_text(v) for v in releases],
                        fontsize=8)
        axis.set_xlim(-0.5, len(releases) - 0.5)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    _fit_limits(acc_axis, acc_lows, acc_highs)
    _fit_limits(step_axis, [0.0], step_highs, floor=0.0)
    _legend_below(figure, acc_axis)
    one = " (one release: no trend)" if len(releases) == 1 else ""
    across = ("TensorFlow releases" if all(r.startswith("TF ") for r in releases)
              else "releases and Keras backends (numerics not comparable across backends)")
    titled(figure, f"Test accuracy and step time across {across}{one}", runs)
    return figure


#: Every figure `report` draws from CSVs: (file stem, what it shows).
FIGURES = (("accuracy_curves", "training and validation accuracy per epoch"),
           ("test_accuracy_bars", "test accuracy against the 50% baseline"),
           ("step_times", "training step time"))


def draw_all(runs: pd.DataFrame, epochs: pd.DataFrame) -> dict[str, Any]:
    """{file stem: Figure} for every figure in FIGURES, not yet saved."""
    return {"accuracy_curves": draw_accuracy_curves(runs, epochs),
            "test_accuracy_bars": draw_test_accuracy_bars(runs),
            "step_times": draw_step_times(runs)}


def save_all(runs: pd.DataFrame, epochs: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure in FIGURES as PNG and PDF in `out`."""
    return [path for stem, figure in draw_all(runs, epochs).items()
            for path in save_figure(figure, out, stem)]

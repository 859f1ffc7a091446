"""The summary table in Markdown, text, LaTeX and CSV: catsdogs.report.summary's numbers, formatted.

`summary.summary_table` returns data (one row per table row, numbers as numbers); this
module only formats it. Accuracies are shown as mean ± the half-width of a 95% t-interval over
seeds with n beside them, step time as the median and its min–max over seeds; the
standard deviations stay in table.csv. A run enters n and the means only if it finished
(status ok) and its accuracies are numbers; every run left out is counted and named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
from tabulate import tabulate

from catsdogs.errors import UsageError
from catsdogs.markup import ESCAPERS
from catsdogs.report.latex import render_latex
from catsdogs.report.numbers import mean_ci, number, step_spread
from catsdogs.report.summary import ACCURACY_STATS, left_out, summary_table
from catsdogs.resultset.comparable import (
    check_comparable,
    unique,
)
from catsdogs.resultset.describe import provenance_items
from catsdogs.resultset.schema import is_missing

FORMATS: tuple[str, ...] = ("github", "latex", "plain", "csv")
TABLE_FILES = {"github": "table.md", "latex": "table.tex", "plain": "table.txt", "csv": "table.csv"}
_TABULATE = {"github": "github", "plain": "plain"}

#: Display columns: key -> header. `--columns` picks from these.
COLUMNS: dict[str, str] = {
    "model": "model", "n": "n", "test": "test acc. %", "val": "val. acc. %",
    "train": "train acc. %", "gap": "gap train−val (pts)", "above": "pts above 50%",
    "step": "step ms, median (min–max)", "images": "images/s", "params": "params total / trainable",
    "failed": "failed / NaN runs",
}
DEFAULT_COLUMNS = ("model", "n", "test", "val", "train", "gap", "above", "step", "images",
                   "params", "failed")
#: What fits \textwidth of a default article with any model4 label (the tests compile
#: it); step time and the rest are one `--columns` away.
DEFAULT_LATEX_COLUMNS = ("model", "n", "test", "val", "train", "gap")


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """`--columns model,n,test`: known keys, 'model' first, each once; None = default."""
    if text is None:
        return None
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in COLUMNS]
    if unknown or not keys:
        raise UsageError(f"--columns: unknown column(s) {', '.join(map(repr, unknown)) or '(none)'}"
                         f"; expected a comma-separated list of {', '.join(COLUMNS)}")
    if len(set(keys)) != len(keys):
        raise UsageError(f"--columns: {text!r} names a column twice; expected each once")
    return tuple(["model"] + [key for key in keys if key != "model"])


# ---------------------------------------------------------------- display


def display_cell(row: dict[str, Any], key: str) -> str:
    """One display cell of a summary row, as people read it (Markdown and text)."""
    if key == "model":
        return row["label"]
    if key == "n":
        return str(row["n"])
    if key in ("test", "val", "train", "gap"):
        stat = {source: name for name, source, _ in ACCURACY_STATS}[key]
        return mean_ci(row, stat, sign=key == "gap")
    if key == "above":
        return mean_ci({"x_mean": row["points_above_chance"],
                        "x_ci95": row["test_accuracy_pct_ci95"]}, "x", sign=True)
    if key == "step":
        return step_spread(row)
    if key == "images":
        return number(row["images_per_sec_median"], 0)
    if key == "params":
        return "" if is_missing(row["params_total"]) else \
            f"{int(row['params_total']):,} / {int(row['params_trainable']):,}"
    return f"{row['n_failed']} / {row['n_nan']}"


def display_table(summary: pd.DataFrame, columns: Sequence[str] = DEFAULT_COLUMNS
                  ) -> pd.DataFrame:
    """The summary as people read it: one string per cell, units in the headers."""
    return pd.DataFrame([{COLUMNS[key]: display_cell(row, key) for key in columns}
                         for row in summary.to_dict("records")], columns=[COLUMNS[key]
                                                                          for key in columns])


# ---------------------------------------------------------------- renderers


def _footer(items: list[tuple[str, str]], fmt: str) -> str:
    """The provenance list; its texts come from result sets, escaped for `fmt`."""
    shown = ESCAPERS[fmt]
    if fmt == "github":
        return "\n".join(["", "Provenance:", ""] + [f"- **{label}**: {shown(text)}"
                                                     for label, text in items])
    return "\n".join(["", "Provenance:"] + [f"  {label}: {shown(text)}"
                                             for label, text in items])


def _csv(summary: pd.DataFrame, runs: pd.DataFrame, environments: Sequence[dict[str, Any]]
         ) -> str:
    """One row per table row; provenance as columns of one value each (lists as JSON
    arrays, the same format as `seeds`), so pandas.read_csv gives it back typed."""
    out = summary.drop(columns=["short_label"])
    lists = {
        "tf_versions": unique(runs, "tf_version", environments),
        "keras_versions": unique(runs, "keras_version", environments),
        "devices": unique(runs, "device", environments),
        "datasets": unique(runs, "dataset"),
        "dataset_fingerprints": unique(runs, "dataset_fingerprint"),
        "git_commits": unique(runs, "git_commit", environments),
        "result_sets": unique(runs, "result_set")
        or [env.get("result_set", "") for env in environments],
    }
    for key, values in lists.items():
        out[key] = json.dumps(values)
    out["dataset_official"] = bool(runs["dataset_fingerprint_known"]
                                   .map(lambda value: value is True).all())
    out["epochs"] = int(runs["epochs"].dropna().max()) if runs["epochs"].notna().any() else None
    out["limit"] = int(runs["limit"].dropna().max()) if runs["limit"].notna().any() else None
    from catsdogs.resultset.describe import is_smoke

    out["smoke"] = is_smoke(runs)
    return out.to_csv(index=False, lineterminator="\n")


def render_table(runs: pd.DataFrame, environments: Sequence[dict[str, Any]], fmt: str,
                 *, allow_mixed: bool = False, columns: Sequence[str] | None = None,
                 label: str | None = None) -> str:
    """The summary table in one of FORMATS, with what was run beside it.

    github/plain: a table and a provenance footer; latex: a complete `table` float whose
    caption carries the scope and warnings; csv: tidy numbers plus provenance columns.
    `columns` picks display columns (default: DEFAULT_COLUMNS, DEFAULT_LATEX_COLUMNS)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    markers = check_comparable(runs, allow_mixed)
    summary = summary_table(runs)
    if fmt == "csv":
        return _csv(summary, runs, environments)
    items = provenance_items(runs, environments, markers, left_out(runs))
    if fmt == "latex":
        return render_latex(summary, runs, items, columns or DEFAULT_LATEX_COLUMNS,
                            label=label or _latex_label(runs))
    display = display_table(summary, columns or DEFAULT_COLUMNS)
    table = tabulate(display.map(ESCAPERS[fmt]), headers="keys", tablefmt=_TABULATE[fmt],
                     showindex=False, disable_numparse=True)
    return table + "\n" + _footer(items, fmt) + "\n"


def _latex_label(runs: pd.DataFrame) -> str:
    sets = unique(runs, "result_set") or ["results"]
    return "tab:catsdogs-" + re.sub(r"[^A-Za-z0-9.-]+", "-", sets[0])

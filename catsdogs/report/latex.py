"""The summary table as a complete LaTeX `table` float: caption with the scope, label, booktabs.

Numbers sit in siunitx `S` columns, so they align on the decimal point, the ± of the
95% interval lines up, and negative numbers get a true minus sign. Everything a reader
needs to trust the numbers (dataset and whether it is the official set, seeds, epochs,
TF/Keras/device, smoke and not-pretrained warnings) is in the caption text, because `%`
comments never reach the PDF. Needs `\\usepackage{booktabs}` and `\\usepackage{siunitx}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from catsdogs.markup import latex_comment, latex_text
from catsdogs.report.numbers import step_spread
from catsdogs.resultset.describe import CHANCE_PCT
from catsdogs.resultset.schema import is_missing

_ACCURACY = {"test": ("test_accuracy_pct", "test acc."), "val": ("val_accuracy_pct", "val. acc."),
             "train": ("train_accuracy_pct", "train acc."),
             "gap": ("overfit_gap_pts", "gap (pts)")}


def _digits(value: float) -> int:
    return len(str(int(abs(value)))) if not is_missing(value) else 1


def _s_format(values: pd.Series) -> str:
    """siunitx table-format wide enough for every value in the column (one decimal)."""
    sign = "-" if (values.dropna() < 0).any() else ""
    return f"{sign}{max([_digits(v) for v in values] or [1])}.1"


def _mean_half(mean: float, half: float) -> str:
    """Two cells: the mean for an `S` column, '$\\pm$ 1.2' for the interval column (empty
    when n < 2 gives no interval)."""
    if is_missing(mean):
        return "{--} & "
    return f"{mean:.1f} & " + ("" if is_missing(half) else rf"$\pm$\,{half:.1f}")


def _pair_spec(values: pd.Series) -> str:
    """A mean and its interval: an S column (decimal-aligned, true minus), then the
    half-width right-aligned (one decimal, so the points align too) right next to it."""
    return f"S[table-format={_s_format(values)}]@{{\\,}}r"


def _step_cell(row: dict[str, Any]) -> str:
    """The step-time cell: median (min–max), escaped for LaTeX."""
    return latex_text(step_spread(row)) or "--"


def _spec_header_cell(key: str, summary: pd.DataFrame, row: dict[str, Any] | None
                      ) -> tuple[str, str, str]:
    """(column spec, header, cell) for one display column; cell is '' without a row."""
    if key in _ACCURACY:
        stat, header = _ACCURACY[key]
        cell = _mean_half(row[f"{stat}_mean"], row[f"{stat}_ci95"]) if row else ""
        return _pair_spec(summary[f"{stat}_mean"]), f"\\multicolumn{{2}}{{c}}{{{header}}}", cell
    if key == "above":
        cell = _mean_half(row["points_above_chance"], row["test_accuracy_pct_ci95"]) \
            if row else ""
        return (_pair_spec(summary["points_above_chance"]),
                "\\multicolumn{2}{c}{vs.\\ 50\\,\\% (pts)}", cell)
    if key == "model":
        return "l", "model", latex_text(row["short_label"]) if row else ""
    if key == "n":
        return "r", "$n$", str(row["n"]) if row else ""
    if key == "step":
        return "r", "step (ms)", _step_cell(row) if row else ""
    if key == "images":
        return "r", "images/s", (f"{row['images_per_sec_median']:.0f}"
                                 if row and not is_missing(row["images_per_sec_median"]) else "")
    if key == "params":
        text = "" if not row or is_missing(row["params_total"]) else \
            f"{int(row['params_total']):,} / {int(row['params_trainable']):,}"
        return "r", "params (total / trainable)", latex_text(text).replace(",", "{,}")
    return "r", "failed / NaN", f"{row['n_failed']} / {row['n_nan']}" if row else ""


def caption(summary: pd.DataFrame, items: list[tuple[str, str]], columns: Sequence[str]) -> str:
    """The caption: what the numbers are, on what data, from which runs, and every
    warning, as sentences."""
    facts = dict(items)
    n_values = sorted({int(n) for n in summary["n"].dropna()})
    n_text = f"$n={n_values[0]}$" if len(n_values) == 1 else "$n$ per row"
    n_text += ": no interval" if n_values == [1] else "; none for $n=1$"
    parts = [
        "Cats vs.\\ dogs accuracy of the post's CNNs: mean $\\pm$ half-width of the "
        f"95\\,\\% $t$-interval over seeds ({n_text}), in \\%; gap = train "
        "$-$ validation accuracy at the last epoch, in points"
        + ("; step = median (min--max) training step over seeds, in ms" if "step" in columns
           else "") + f". Chance is {CHANCE_PCT:.0f}\\,\\%.",
        f"Data: {latex_text(facts['dataset'])}; {latex_text(facts['epochs'])} epochs; "
        f"seed{'s' if ',' in facts['seeds'] else ''} "
        f"{latex_text(facts['seeds'])}; batch {latex_text(facts['batch size'])}.",
        f"TensorFlow {latex_text(facts['TensorFlow'])}, Keras {latex_text(facts['Keras'])}, "
        f"{latex_text(facts['device'])}."
        + (f" Keras backend: {latex_text(facts['Keras backend'])}." if "Keras backend" in facts
           else ""),
    ]
    for label, text in items:
        if label == "warning":
            parts.append(f"\\textbf{{{latex_text(text)}.}}")
        elif label.startswith(("failed runs", "left out", "recorded more than once")):
            parts.append(f"{latex_text(label[0].upper() + label[1:])}: {latex_text(text)}.")
    return " ".join(parts)


def render_latex(summary: pd.DataFrame, runs: pd.DataFrame, items: list[tuple[str, str]],
                 columns: Sequence[str], *, label: str) -> str:
    """The `table` float; provenance not in the caption (commit, hosts, sets) follows as
    `%` comments for whoever opens the .tex."""
    specs, headers = zip(*[_spec_header_cell(key, summary, None)[:2] for key in columns])
    body = [" & ".join(_spec_header_cell(key, summary, row)[2] for key in columns) + r" \\"
            for row in summary.to_dict("records")]
    lines = [
        "% Needs \\usepackage{booktabs} and \\usepackage{siunitx} (version 3).",
        "\\begin{table}[htbp]",
        "\\centering",
        "\\small",
        "\\setlength{\\tabcolsep}{4pt}",
        f"\\caption{{{caption(summary, items, columns)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{' '.join(specs)}}}",
        "\\toprule",
        " & ".join(headers) + r" \\",
        "\\midrule",
        *body,
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
    ]
    lines += [f"% {name}: {latex_comment(text)}" for name, text in items]
    return "\n".join(lines) + "\n"

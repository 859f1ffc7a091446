"""How numbers are written in every table: digits, true minus signs, intervals, spreads.

The Markdown, text and LaTeX tables (catsdogs.report.tables, catsdogs.report.latex) all write
their cells through here, so a figure reads the same in every format.
"""

from __future__ import annotations

from typing import Any

from catsdogs.resultset.machines import contended_note
from catsdogs.resultset.schema import is_missing


def number(value: Any, digits: int = 1, sign: bool = False) -> str:
    """A rounded number as people read it, with a true minus sign (U+2212)."""
    if is_missing(value):
        return ""
    return (f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}").replace("-", "−")


def mean_ci(row: dict[str, Any], key: str, sign: bool = False) -> str:
    """'66.1 ± 1.2'; the mean alone when there is no interval (n = 1); '' when no data."""
    mean, half = row[f"{key}_mean"], row[f"{key}_ci95"]
    if is_missing(mean):
        return ""
    return number(mean, sign=sign) + ("" if is_missing(half) else f" ± {half:.1f}")


def step_digits(value: float) -> int:
    """Whole milliseconds from 10 ms up, one decimal below (a CPU step vs a GPU one)."""
    return 0 if not is_missing(value) and value >= 10 else 1


def step_spread(row: dict[str, Any]) -> str:
    """'491 (480–502)': median and min–max over seeds; the median alone for n = 1; with
    '491 (480–502; 2 contended left out)' (or 'all 3 contended') where the summary left
    contended runs out."""
    median, low, high = (row[f"step_time_ms_{s}"] for s in ("median", "min", "max"))
    busy = row.get("n_step_contended")
    busy = 0 if is_missing(busy) else int(busy)
    if is_missing(median):
        return contended_note(busy, False) if busy else ""
    digits = step_digits(median)
    text = number(median, digits)
    spread = [] if low == high else [f"{number(low, digits)}–{number(high, digits)}"]
    notes = spread + ([contended_note(busy, True)] if busy else [])
    return f"{text} ({'; '.join(notes)})" if notes else text

"""The per-seed statistics of a report: one row of numbers per table row, nothing drawn.

Every renderer (tables in each format, figures, the HTML page) reads the same
`summary_table`, so a mean, an interval or an n cannot differ between two of them.
Percent and points here; formatting is the renderers' job.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from catsdogs.resultset.comparable import (
    BASE,
    GROUP,
    base_setup,
    ok_runs,
    ordered_groups,
    with_groups,
)
from catsdogs.resultset.describe import CHANCE_PCT
from catsdogs.resultset.machines import uncontended
from catsdogs.stats import t_interval

#: Accuracy-like statistics: (summary key, source, header). Each gets mean, ci95, std.
ACCURACY_STATS = (("test_accuracy_pct", "test", "test acc. (%)"),
                  ("val_accuracy_pct", "val", "val. acc. (%)"),
                  ("train_accuracy_pct", "train", "train acc. (%)"),
                  ("overfit_gap_pts", "gap", "gap train−val (pts)"))


def _usable(ok: pd.DataFrame) -> pd.Series:
    """Finished runs whose three accuracies are numbers: the runs behind n and the means
    (the same set for every column, so one n describes the whole row)."""
    columns = ["test_accuracy", "val_accuracy", "train_accuracy"]
    return ok[columns].astype(float).notna().all(axis=1)


def row_label(group: str, members: pd.DataFrame, short: bool) -> str:
    """The row's name: alias and variant (short: alias only), plus model4's base setup,
    so a model4 number is never read without whether it was pretrained."""
    first = members.iloc[0]
    alias, variant = first["alias"] or "", first["variant"]
    label = group.replace(variant, alias if short else f"{variant} ({alias})", 1) \
        if alias else group
    setup = base_setup(first)
    if setup is not None and f"{BASE}=" not in group:  # a mixed row names it already
        label += f" ({setup[1]})" if short else f", {setup[0]}"
    return label


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per table row (registry order; split by mixed keys if any), numbers only.

    Accuracies in percent (the schema's fractions x 100), gap in points. For each of test,
    val, train and gap: mean, ci95 (t-interval half-width) and std over the usable runs;
    step time and images/s: median, min and max over those of them not contended
    (`n_step_contended` counts the others), the runs speed verdicts use. Counts are
    integers."""
    runs = with_groups(runs)
    rows = [_summary_row(group, runs[runs[GROUP] == group]) for group in ordered_groups(runs)]
    summary = pd.DataFrame(rows)
    for column in ("n", "n_runs", "n_failed", "n_nan", "n_step_contended", "params_total",
                   "params_trainable"):
        summary[column] = summary[column].astype("Float64").round().astype("Int64")
    return summary


def _summary_row(group: str, members: pd.DataFrame) -> dict[str, Any]:
    ok = ok_runs(members)
    usable = ok[_usable(ok)]
    values = {
        "test": usable["test_accuracy"].astype(float) * 100,
        "val": usable["val_accuracy"].astype(float) * 100,
        "train": usable["train_accuracy"].astype(float) * 100,
    }
    values["gap"] = values["train"] - values["val"]
    setup = base_setup(members.iloc[0])
    row: dict[str, Any] = {
        "variant": group, "alias": ", ".join(sorted(members["alias"].dropna().unique())),
        "label": row_label(group, members, short=False),
        "short_label": row_label(group, members, short=True),
        "model4_base": setup[0] if setup else "",
        "n": len(usable), "n_runs": len(members),
        "n_failed": int((members["status"] != "ok").sum()), "n_nan": len(ok) - len(usable),
        "seeds": json.dumps([int(s) for s in sorted(usable["seed"].dropna().unique())]),
    }
    for key, source, _header in ACCURACY_STATS:
        mean, half, _ = t_interval(values[source])
        row[f"{key}_mean"], row[f"{key}_ci95"] = mean, half
        row[f"{key}_std"] = values[source].std(ddof=1) if len(usable) > 1 else math.nan
    row["points_above_chance"] = row["test_accuracy_pct_mean"] - CHANCE_PCT
    row["chance_pct"] = CHANCE_PCT
    timed = uncontended(usable)  # a contended run's speed is the load's (machines.py)
    row["n_step_contended"] = len(usable) - len(timed)
    for key in ("step_time_ms", "images_per_sec"):
        series = timed[key].dropna().astype(float)
        for stat in ("median", "min", "max"):
            row[f"{key}_{stat}"] = float(getattr(series, stat)()) if len(series) else math.nan
    for key in ("params_total", "params_trainable"):
        series = usable[key].dropna().astype(float)
        row[key] = float(series.median()) if len(series) else math.nan
    return row


def left_out(runs: pd.DataFrame) -> list[str]:
    """'augmented_cnn seed 2' for each finished run whose accuracy is NaN."""
    ok = ok_runs(runs)
    return [f"{row['variant']} seed {row['seed']}" for _, row in ok[~_usable(ok)].iterrows()]

"""One side of a comparison: the runs and epochs of one or more result sets, checked on load.

`compare` has a base and a candidate side, `trend` one side per release. Checks here
are the ones issue 9 asks of every load: step time has one source of truth (runs.csv
agrees with epochs.csv) and each (variant, seed) appears once unless allowed; a failed
check is a ResultsError (exit 2) naming the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catsdogs.errors import ResultsError
from catsdogs.resultset.comparable import duplicate_seeds, ok_runs, unique
from catsdogs.resultset.store import SOURCE, load_result_sets

#: Relative slack when checking runs.csv's step_time_ms against epochs.csv (float rounding).
STEP_SLACK = 1e-9

#: Column added on load: a row's line in its runs.csv (header = line 1), for error messages.
LINE = "csv_line"


def with_lines(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` (as merged by the loader) plus each row's line in its own runs.csv."""
    if LINE in runs.columns:
        return runs
    return runs.assign(**{LINE: runs.groupby(SOURCE).cumcount() + 2})


def where(run: pd.Series) -> str:
    """'<set>/runs.csv line N': where a user finds the row."""
    return f"{Path(run[SOURCE]) / 'runs.csv'} line {run[LINE]}"


@dataclasses.dataclass
class Side:
    """The runs of one side (one or more result sets, e.g. shards), checked on load."""

    label: str
    runs: pd.DataFrame
    epochs: pd.DataFrame

    @classmethod
    def load(cls, label: str, paths: Sequence[Path], *, allow_duplicates: bool = False
             ) -> Side:
        runs, epochs, _ = load_result_sets(list(paths))
        side = cls(label, with_lines(runs), epochs)
        side.check_step_times()
        if not allow_duplicates:
            side.check_duplicates()
        return side

    @classmethod
    def from_frames(cls, label: str, runs: pd.DataFrame, epochs: pd.DataFrame) -> Side:
        return cls(label, with_lines(runs), epochs)

    def ok(self, variant: str) -> pd.DataFrame:
        return ok_runs(self.runs[self.runs["variant"] == variant])

    def epoch_rows(self, run: pd.Series) -> pd.DataFrame:
        rows = self.epochs[(self.epochs[SOURCE] == run[SOURCE])
                           & (self.epochs["run_id"] == run["run_id"])]
        return rows.sort_values("epoch")

    def step_medians(self, run: pd.Series) -> np.ndarray:
        """The run's per-epoch median step times from epoch 2 on (epoch 1 holds tracing
        and autotuning), or all epochs when it has only one: what the verdict uses."""
        rows = self.epoch_rows(run).dropna(subset=["step_ms_median"])
        later = rows[rows["epoch"] >= 2]
        return (later if len(later) else rows)["step_ms_median"].to_numpy(float)

    def check_step_times(self) -> None:
        """One source of truth: runs.csv's step_time_ms is the median of all steps of
        epochs 2..N, so it must lie between the smallest and largest per-epoch median of
        those epochs in epochs.csv. Anything else means the files disagree: exit 2."""
        for _, run in ok_runs(self.runs).iterrows():
            medians = self.step_medians(run)
            value = run["step_time_ms"]
            if pd.isna(value):
                continue
            if not len(medians):
                raise ResultsError(f"{where(run)}: step_time_ms = {value!r} for run "
                                   f"{run['run_id']}, but epochs.csv has no step times for it; "
                                   "expected its per-epoch step_ms_median rows")
            low, high = medians.min(), medians.max()
            if not low * (1 - STEP_SLACK) <= value <= high * (1 + STEP_SLACK):
                raise ResultsError(f"{where(run)}: step_time_ms = {value!r} for run "
                                   f"{run['run_id']} disagrees with epochs.csv (its per-epoch "
                                   f"medians span {low:.6g} to {high:.6g} ms); expected a "
                                   "value in that range")

    def check_duplicates(self) -> None:
        """Each (variant, seed) once per side: a seed counted twice fakes agreement."""
        duplicated = duplicate_seeds(self.runs)
        if not duplicated:
            return
        variant, seed = next(iter(duplicated))
        ok = ok_runs(self.runs)
        first, again = ok[(ok["variant"] == variant) & (ok["seed"] == seed)].iloc[:2].iterrows()
        raise ResultsError(
            f"{where(again[1])}: {variant} seed {seed} is already on the {self.label} "
            f"side ({where(first[1])}); expected each (variant, seed) once per side "
            "(pass --allow-duplicates to count both)")

    def info(self) -> dict[str, Any]:
        """Result sets and versions, for the header and the JSON."""
        return {"result_sets": list(dict.fromkeys(self.runs["result_set"].dropna())),
                "tf_versions": unique(self.runs, "tf_version"),
                "keras_versions": unique(self.runs, "keras_version"),
                "backends": unique(self.runs, "backend"),
                "jax_versions": unique(self.runs, "jax_version"),
                "torch_versions": unique(self.runs, "torch_version"),
                "devices": unique(self.runs, "device")}

"""One side of a comparison: the runs and epochs of one or more result sets, checked on load.

`compare` has a base and a candidate side, `trend` one side per release. The checks
here are the ones that depend on how sets are grouped: each (variant, seed) appears once
per side unless allowed; a failed check is a ResultsError (exit 2) naming the file and
line. What holds within one set (step time agreeing with epochs.csv, each run_id once)
the loader checks for every command (catsdogs.resultset.store.read_set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catsdogs.errors import ResultsError, quoted
from catsdogs.resultset.comparable import duplicate_seeds, ok_runs, unique
from catsdogs.resultset.load import SOURCE, load_result_sets
from catsdogs.resultset.machines import fingerprints
from catsdogs.resultset.schema import RUNS_CSV, step_medians

#: Column added on load: a row's line in its runs.csv (header = line 1), for error messages.
LINE = "csv_line"


def with_lines(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` (as merged by the loader) plus each row's line in its own runs.csv."""
    if LINE in runs.columns:
        return runs
    return runs.assign(**{LINE: runs.groupby(SOURCE).cumcount() + 2})


def where(run: pd.Series) -> str:
    """"'<set>/runs.csv': line N": where a user finds the row."""
    return f"{quoted(Path(run[SOURCE]) / RUNS_CSV)}: line {run[LINE]}"


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
        """The run's per-epoch median step times as schema.step_medians picks them (epoch
        2 on): what the verdict uses, and what the loader checked step_time_ms against."""
        return np.array(step_medians(self.epoch_rows(run).to_dict("records")), dtype=float)

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
        """Result sets, versions and machine fingerprints, for the header and the JSON."""
        return {"result_sets": list(dict.fromkeys(self.runs["result_set"].dropna())),
                "tf_versions": unique(self.runs, "tf_version"),
                "keras_versions": unique(self.runs, "keras_version"),
                "backends": unique(self.runs, "backend"),
                "jax_versions": unique(self.runs, "jax_version"),
                "torch_versions": unique(self.runs, "torch_version"),
                "devices": unique(self.runs, "device"),
                "machines": fingerprints(self.runs)}

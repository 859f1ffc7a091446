"""Edits of test result sets for the report tests (TEST DATA): a model4 trained without
pretrained weights, a NaN accuracy, a validation accuracy above training accuracy.

Result sets are written by tests/resultsets.py through the real writer; these helpers
then change cells of its runs.csv, as a later run of the benchmark would have written them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from catsdogs.resultset.schema import ROW_CHECK, row_check

#: model4 with --weights none: the base trains from scratch (only BatchNorm's moving
#: statistics stay non-trainable), as models.build_model counts it.
SCRATCH_COUNTS = {"params_trainable": 2_411_746, "params_non_trainable": 34_112}
#: model4 with --weights none before it meant training from scratch: a frozen random base.
FROZEN_RANDOM_COUNTS = {"params_trainable": 187_874, "params_non_trainable": 2_257_984}


def rewrite_runs(result_set: Path, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
    """Apply `change` to every row of runs.csv (same columns, same order), recomputing
    each row's check as the writer would, so the edit reads as a row the benchmark wrote."""
    path = result_set / "runs.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    changed = [change(dict(row)) for row in rows]
    for row in changed:
        if ROW_CHECK in row:
            row[ROW_CHECK] = row_check([v for k, v in row.items() if k != ROW_CHECK])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(changed)


def without_pretrained_weights(result_set: Path, counts: dict[str, int] = SCRATCH_COUNTS
                               ) -> Path:
    """model4's rows as `--weights none` records them."""
    def change(row: dict[str, str]) -> dict[str, str]:
        if row["variant"] == "transfer_mobilenetv2":
            row.update(pretrained="false", weights="none",
                       **{key: str(value) for key, value in counts.items()})
        return row

    rewrite_runs(result_set, change)
    return result_set


def nan_accuracy(result_set: Path, variant: str, seed: int) -> Path:
    """One finished run whose test accuracy is NaN (as a diverged evaluation reads)."""
    def change(row: dict[str, str]) -> dict[str, str]:
        if row["variant"] == variant and row["seed"] == str(seed):
            row["test_accuracy"] = "nan"
        return row

    rewrite_runs(result_set, change)
    return result_set


def validation_above_training(result_set: Path, variant: str, points: float = 5.0) -> Path:
    """The variant's validation accuracy `points` above its training accuracy (a negative
    gap, as heavy augmentation or dropout can give)."""
    def change(row: dict[str, str]) -> dict[str, str]:
        if row["variant"] == variant and row["status"] == "ok":
            row["val_accuracy"] = str(min(1.0, float(row["train_accuracy"]) + points / 100))
        return row

    rewrite_runs(result_set, change)
    return result_set

"""The result-set format: every column's type and unit, and the columns of each version.

One place says what a result set holds, so the writer (store.py), the loader
(store.py), and results/README.md (a test compares them) cannot drift apart: adding a
column is one edit here, a new version in `SCHEMAS`, and one line in the README. The
typing of a cell and the checks of a row belong to the format, so they are here too.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import re
from typing import Any, Iterable

import pandas as pd

from catsdogs.errors import ResultsError

SCHEMA_VERSION = 4


def is_missing(value: Any) -> bool:
    """A blank cell as the loader types it (None, pandas' NA or NaN): the one test every
    renderer and rule uses, so "no value" is never confused with 0 or an empty text."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: `kind` is how the loader types and checks it (text, int, float,
    fraction, bool, time), `unit` is what results/README.md states for it."""

    kind: str
    unit: str = "—"
    required: bool = False  # a row without it was cut short or edited: refused


def _columns(kind: str, unit: str, names: str, required: bool = False) -> dict[str, Column]:
    return {name: Column(kind, unit, required) for name in names.split()}


#: Every column of either CSV, in no particular order (the schemas below give the order).
COLUMNS: dict[str, Column] = {
    **_columns("int", "—", "schema_version seed", required=True),
    **_columns("text", "—", "run_id variant status", required=True),
    "image_size": Column("text", "pixels"),  # "160x160"
    **_columns("text", "—", "result_set alias error dataset weights strategy "
                            "shard dataset_changes tf_version keras_version python_version "
                            "cuda_version cudnn_version device gpu_name host git_commit"),
    "dataset_fingerprint": Column("text", "sha256"),
    "machine_fingerprint": Column("text", "sha256"),
    "row_sha256": Column("text", "sha256", required=True),
    **_columns("int", "epochs", "epochs epochs_completed"),
    **_columns("int", "images", "batch_size limit n_train n_validation n_test skipped_images "
                                "test_correct"),
    **_columns("int", "—", "replicas"),
    "epoch": Column("int", "—", required=True),
    "steps": Column("int", "steps"),
    **_columns("int", "parameters", "params_total params_trainable params_non_trainable"),
    **_columns("bool", "bool", "dataset_fingerprint_known pretrained deterministic "
                               "mixed_precision xla contended"),
    **_columns("fraction", "fraction", "train_accuracy val_accuracy test_accuracy accuracy "
                                       "contention"),
    "overfit_gap": Column("float", "fraction"),  # train - val: may be negative
    **_columns("float", "nats", "train_loss val_loss test_loss loss"),
    "test_p_value": Column("float", "probability"),
    **_columns("float", "ms", "step_time_ms step_time_ms_p90 step_ms_median"),
    "images_per_sec": Column("float", "images/s"),
    **_columns("float", "s", "first_epoch_s train_wall_s epoch_s train_s process_cpu_s "
                             "other_cpu_s steal_s"),
    **_columns("float", "MiB", "peak_rss_mb gpu_peak_mb"),
    "started_utc": Column("time", "ISO 8601"),
    "finished_utc": Column("time", "ISO 8601"),
    # The backend block (version 4): which Keras backend trained, its versions, the decoder.
    **_columns("text", "—", "backend jax_version jaxlib_version torch_version decoder"),
}

_RUN_COLUMNS_V1: tuple[str, ...] = (
    "schema_version", "run_id", "result_set", "variant", "alias", "seed", "status", "error",
    # what was run
    "epochs", "epochs_completed", "batch_size", "image_size", "dataset", "dataset_fingerprint",
    "dataset_fingerprint_known", "limit", "n_train", "n_validation", "n_test",
    "skipped_images", "pretrained", "weights", "deterministic", "mixed_precision", "xla",
    "strategy", "replicas", "shard",
    # what came out
    "train_accuracy", "val_accuracy", "test_accuracy", "overfit_gap", "train_loss",
    "val_loss", "test_loss", "test_correct", "test_p_value",
    "step_time_ms", "step_time_ms_p90", "images_per_sec", "first_epoch_s", "train_wall_s",
    "peak_rss_mb", "gpu_peak_mb",
    "params_total", "params_trainable", "params_non_trainable",
    # provenance
    "tf_version", "keras_version", "python_version", "cuda_version", "cudnn_version",
    "device", "gpu_name", "host", "git_commit", "started_utc", "finished_utc",
)
_EPOCH_COLUMNS_V1: tuple[str, ...] = (
    "schema_version", "run_id", "variant", "seed", "epoch", "loss", "accuracy", "val_loss",
    "val_accuracy", "epoch_s", "train_s", "steps", "step_ms_median",
)


def _v2(columns: tuple[str, ...], after: str | None) -> tuple[str, ...]:
    """Version 2 adds `dataset_changes` (after the fingerprint columns) and `row_sha256`
    (last, so a row cut short anywhere fails its check)."""
    out = list(columns)
    if after:
        out.insert(out.index(after) + 1, "dataset_changes")
    return (*out, "row_sha256")


def _inserted(columns: tuple[str, ...], after: str, *new: str) -> tuple[str, ...]:
    out = list(columns)
    index = out.index(after) + 1
    return (*out[:index], *new, *out[index:])


def _v3(runs: tuple[str, ...], epochs: tuple[str, ...]
        ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Version 3 adds the machine (`machine_fingerprint`, after `git_commit`; its facts
    are in environment.json) and contention: per run `contention` and `contended` (after
    `gpu_peak_mb`), per epoch the CPU time of this process, of other processes and stolen
    (after `step_ms_median`)."""
    runs = _inserted(_inserted(runs, "git_commit", "machine_fingerprint"), "gpu_peak_mb",
                     "contention", "contended")
    return runs, _inserted(epochs, "step_ms_median", "process_cpu_s", "other_cpu_s", "steal_s")


#: The Keras backend of a run and what it ran on (issue 21), beside keras_version.
BACKEND_COLUMNS = ("backend", "jax_version", "jaxlib_version", "torch_version", "decoder")


def _v4(runs: tuple[str, ...], epochs: tuple[str, ...]
        ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Version 4 adds BACKEND_COLUMNS to runs.csv after `keras_version` (epochs.csv is
    unchanged)."""
    return _inserted(runs, "keras_version", *BACKEND_COLUMNS), epochs


_V2 = (_v2(_RUN_COLUMNS_V1, "dataset_fingerprint_known"), _v2(_EPOCH_COLUMNS_V1, None))
#: version -> (runs.csv columns, epochs.csv columns). Every version here stays readable.
SCHEMAS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (_RUN_COLUMNS_V1, _EPOCH_COLUMNS_V1),
    2: _V2,
    3: _v3(*_V2),
    4: _v4(*_v3(*_V2)),
}
#: What a column means in a set whose version lacks it, where that is a fact rather than
#: a guess: before --backend, every run trained on TensorFlow.
IMPLIED_IN_OLDER: dict[str, Any] = {"backend": "tensorflow"}
RUN_COLUMNS, EPOCH_COLUMNS = SCHEMAS[SCHEMA_VERSION]

RUNS_CSV = "runs.csv"
EPOCHS_CSV = "epochs.csv"
ENVIRONMENT_JSON = "environment.json"
LOCK_FILE = ".lock"
ROW_CHECK = "row_sha256"


def row_check(cells: Iterable[str]) -> str:
    """First 16 hex digits of the sha256 of a row's other cells: a row cut short (a crash,
    a bad copy) or edited by hand no longer matches, so the loader finds it."""
    return hashlib.sha256("\x1f".join(cells).encode("utf-8", "surrogateescape")
                          ).hexdigest()[:16]


KNOWN_SCHEMA_VERSIONS: tuple[int, ...] = tuple(SCHEMAS)
#: Units of measurements that cannot be negative or infinite: times, rates, memory. (A
#: loss may be inf or NaN: a diverged run records it; an accuracy is a fraction.)
NON_NEGATIVE_UNITS = frozenset({"ms", "s", "images/s", "MiB"})
#: Relative slack when checking a run's step_time_ms against its epochs (float rounding).
STEP_SLACK = 1e-9
_INTEGER = re.compile(r"-?[0-9]+")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                   r"(Z|[+-][0-9]{2}:[0-9]{2})")


def known_version(value: Any, where: str) -> int:
    """A schema version this module can read, else one line saying which it reads."""
    text = str(value).strip()
    version = int(text) if _INTEGER.fullmatch(text) and not isinstance(value, bool) else None
    if version not in SCHEMAS:
        known = ", ".join(str(v) for v in KNOWN_SCHEMA_VERSIONS)
        raise ResultsError(f"{where}: unknown schema_version {text!r}; this catsdogs reads "
                           f"version(s) {known} (a newer catsdogs wrote it?)")
    return version


def typed_cell(text: str, column: str, where: str) -> Any:
    """One cell as its column's type, or a ResultsError naming file, line and column."""
    spec = COLUMNS[column]
    if text == "":
        if spec.required:
            raise ResultsError(f"{where}: {column} is empty; expected a value (was the row "
                               "cut short?)")
        return None
    if spec.kind == "text":
        return text
    if spec.kind == "int":
        if not _INTEGER.fullmatch(text):
            raise ResultsError(f"{where}: {column} = {text!r}; expected an integer")
        if text.startswith("-"):  # counts, sizes, seeds, epochs: none is ever negative
            raise ResultsError(f"{where}: {column} = {text!r}; expected an integer >= 0")
        return int(text)
    if spec.kind == "bool":
        if text not in ("true", "false"):
            raise ResultsError(f"{where}: {column} = {text!r}; expected true or false")
        return text == "true"
    if spec.kind == "time":
        if not _TIME.fullmatch(text):
            raise ResultsError(f"{where}: {column} = {text!r}; expected an ISO 8601 time "
                               "like 2026-01-05T12:00:00+00:00")
        return text
    try:
        value = float(text)
    except ValueError:
        raise ResultsError(f"{where}: {column} = {text!r}; expected a number") from None
    if spec.kind == "fraction" and not 0 <= value <= 1 and value == value:  # NaN passes
        raise ResultsError(f"{where}: {column} = {text!r}; expected a fraction in [0, 1]")
    if spec.unit == "probability" and not 0 <= value <= 1 and value == value:
        raise ResultsError(f"{where}: {column} = {text!r}; expected a probability in [0, 1]")
    if spec.unit in NON_NEGATIVE_UNITS and not (0 <= value < math.inf or value != value):
        raise ResultsError(f"{where}: {column} = {text!r} is "
                           f"{'negative' if value < 0 else 'infinite'}; expected a finite "
                           f"number >= 0 (in {spec.unit})")
    return value


def check_run(row: dict[str, Any], where: str) -> None:
    """What an ok row must hold together: its test counts and its test accuracy."""
    if row["status"] not in ("ok", "failed"):
        raise ResultsError(f"{where}: status = {row['status']!r}; expected ok or failed")
    if row["status"] != "ok":
        return
    for column in ("n_test", "test_correct", "test_accuracy"):
        if row.get(column) is None:
            raise ResultsError(f"{where}: {column} is empty in an ok row; expected a value "
                               "(was the row cut short?)")
    n_test, correct, accuracy = row["n_test"], row["test_correct"], row["test_accuracy"]
    if not 0 <= correct <= n_test or n_test <= 0:
        raise ResultsError(f"{where}: test_correct = {correct} of n_test = {n_test}; expected "
                           "0 <= test_correct <= n_test, n_test > 0")
    if accuracy == accuracy and abs(accuracy - correct / n_test) > 1e-6:
        raise ResultsError(f"{where}: test_accuracy = {accuracy!r} but test_correct / n_test "
                           f"= {correct}/{n_test} = {correct / n_test:.6f}; expected them equal")


def append_problem(text: str, header: str) -> str | None:
    """Why the writer could not append rows to a CSV holding `text` and keep every old
    byte: its header is not byte for byte the one the writer writes (line ends of a
    spreadsheet, quotes, spaces), or its last line has no line end. None when it can.
    The loader (catsdogs.resultset.store) refuses the same, so a set that passes its
    `read_set` can always be appended to: `--resume` finds out before it trains."""
    first = text.split("\n", 1)[0] + "\n"
    if first.endswith("\r\n"):
        return ("line 1 ends in CR LF (saved by a spreadsheet or a Windows editor?); "
                "expected plain LF line ends, as the benchmark writes them")
    if first != header:
        return ("line 1 is not byte for byte the header the benchmark writes (quotes or "
                "spaces added?); expected it unchanged")
    if not text.endswith("\n"):
        return (f"line {text.count(chr(10)) + 1} is cut short (no line end); expected "
                "complete rows, as the benchmark writes them")
    return None


def step_medians(epoch_rows: Iterable[dict[str, Any]]) -> list[float]:
    """A run's per-epoch median step times from epoch 2 on (epoch 1 holds tracing and
    autotuning), or every epoch's when it has only one: what step_time_ms summarises,
    and what the step-time verdict uses (catsdogs.verdicts.side)."""
    timed = [row for row in epoch_rows if not is_missing(row.get("step_ms_median"))]
    later = [row for row in timed if row["epoch"] >= 2]
    return [float(row["step_ms_median"]) for row in (later or timed)]


def check_step_time(run: dict[str, Any], epoch_rows: list[dict[str, Any]], where: str) -> None:
    """One source of truth for step time: a finished run's step_time_ms is the median of
    all steps of epochs 2..N, so it lies between the smallest and largest per-epoch
    median of those epochs in epochs.csv. Anything else means the files disagree."""
    value = run.get("step_time_ms")
    if run.get("status") != "ok" or is_missing(value):
        return
    medians = step_medians(epoch_rows)
    if not medians:
        raise ResultsError(f"{where}: step_time_ms = {value!r} for run {run['run_id']!r}, "
                           "but epochs.csv has no step times for it; expected its "
                           "per-epoch step_ms_median rows")
    low, high = min(medians), max(medians)
    if not low * (1 - STEP_SLACK) <= value <= high * (1 + STEP_SLACK):
        raise ResultsError(f"{where}: step_time_ms = {value!r} for run {run['run_id']!r} "
                           f"lies outside its per-epoch median step times in epochs.csv "
                           f"({low:.6g} to {high:.6g} ms); expected runs.csv and epochs.csv "
                           "to agree (a run's step time is the median of those epochs' steps)")


def csv_lines(rows: Iterable[list[str]]) -> str:
    """Rows as the writer writes them (csv, LF line ends): the bytes the loader holds a
    file's header and rows against."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()

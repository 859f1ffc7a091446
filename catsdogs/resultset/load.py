"""Result sets read back: the one checking loader that report, compare, trend, probe and
--resume share.

`read_set` refuses (one line) every file the writer (catsdogs.resultset.store) could not
have written or could not append to byte for byte, and types every cell by the schema
(catsdogs.resultset.schema); `load_result_sets` joins several sets into the frames the
report and the verdicts read.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Sequence

from catsdogs.errors import ResultsError, UsageError, os_reason, quoted
from catsdogs.fsutil import check_path_length
from catsdogs.resultset.schema import (
    COLUMNS,
    ENVIRONMENT_JSON,
    EPOCH_COLUMNS,
    EPOCHS_CSV,
    IMPLIED_IN_OLDER,
    ROW_CHECK,
    RUN_COLUMNS,
    RUNS_CSV,
    SCHEMAS,
    append_problem,
    check_run,
    check_step_time,
    csv_lines,
    known_version,
    row_check,
    typed_cell,
)

#: Column added on load, not part of the schema: the folder a row was read from (run ids
#: are unique only within one set).
SOURCE = "source"
_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass
class LoadedSet:
    """A result set as checked, typed rows: every column of the current schema present
    (None where the set's older schema lacks it or the cell is empty)."""

    path: Path
    environment: dict[str, Any]
    schema_version: int
    runs: list[dict[str, Any]]
    epochs: list[dict[str, Any]]


def _read_text(path: Path, what: str) -> str:
    """A file's text, refusing what our writer never produces: no file, 0 bytes, a
    byte-order mark, bytes that are not UTF-8."""
    try:
        if not path.is_file():
            raise ResultsError(f"{quoted(path)}: missing; expected the {what} of a result set")
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{quoted(path)}: not readable ({os_reason(exc)}); expected the "
                           f"{what} of a result set") from None
    if not raw:
        raise ResultsError(f"{quoted(path)}: empty file; expected the {what} of a result set")
    if raw.startswith(_BOM):
        raise ResultsError(f"{quoted(path)}: starts with a byte-order mark (saved by an "
                           "editor?); expected plain UTF-8 as the benchmark writes it")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{quoted(path)}: not UTF-8 at byte {exc.start}; expected plain "
                           "UTF-8 as the benchmark writes it") from None


def read_environment(path: Path) -> dict[str, Any]:
    """environment.json as a dict with a known integer `schema_version`."""
    text = _read_text(path, "environment.json")
    try:
        environment = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{quoted(path)}: not readable JSON ({exc}); expected the "
                           "environment object the benchmark writes") from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise ResultsError(f"{quoted(path)}: not readable JSON (nested too deep to read); "
                           "expected the environment object the benchmark writes") from None
    if not isinstance(environment, dict):
        raise ResultsError(f"{quoted(path)}: expected a JSON object, got "
                           f"{type(environment).__name__}")
    environment["schema_version"] = known_version(environment.get("schema_version"),
                                                  quoted(path))
    return environment


def _header_problem(header: list[str], columns: tuple[str, ...]) -> str:
    missing = [c for c in columns if c not in header]
    extra = [c for c in header if c not in columns]
    if missing:
        return f"missing column(s) {', '.join(missing)}"
    if extra:
        return f"extra column(s) {', '.join(extra)}"
    return "its columns are in another order"


def _raw_rows(path: Path, columns: tuple[str, ...], version: int
              ) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every row, after checking the header is exactly the
    schema's and every row is complete: as many fields as the header, and a line end.
    What the writer could not append to byte for byte (`_unappendable`) is refused here,
    so every set this accepts can be resumed."""
    text = _read_text(path, f"{path.name} (schema {version})")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        if header != list(columns):
            raise ResultsError(f"{quoted(path)}: {_header_problem(header, columns)}; expected "
                               f"schema {version}'s columns (results/README.md)")
        problem = append_problem(text, csv_lines([list(columns)]))
        if problem:
            raise ResultsError(f"{quoted(path)}: {problem}")
        rows = []
        for cells in reader:
            if len(cells) != len(columns):
                raise ResultsError(f"{quoted(path)}: line {reader.line_num} has {len(cells)} "
                                   f"fields; expected {len(columns)} (was the row cut short?)")
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ResultsError(f"{quoted(path)}: not a readable CSV ({exc}); expected the "
                           "benchmark's CSV") from None
    return rows


def _read_table(path: Path, columns: tuple[str, ...], current: tuple[str, ...],
                version: int) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) of one CSV: checked, typed rows keyed by the current schema's columns,
    each with the place a message names ('<file>': line N)."""
    typed_rows = []
    for line, cells in _raw_rows(path, columns, version):
        where = f"{quoted(path)}: line {line}"
        row: dict[str, Any] = dict.fromkeys(current)
        row.update((column, value) for column, value in IMPLIED_IN_OLDER.items()
                   if column in current and column not in columns)
        row.update((column, typed_cell(cell, column, where))
                   for column, cell in zip(columns, cells))
        if row["schema_version"] != version:
            known_version(row["schema_version"], where)
            raise ResultsError(f"{where}: schema_version = {row['schema_version']}; expected "
                               f"{version}, the version in environment.json")
        if "status" in columns:
            check_run(row, where)
        if columns[-1] == ROW_CHECK and row_check(cells[:-1]) != cells[-1]:
            raise ResultsError(f"{where}: {ROW_CHECK} does not match the row (cut short or "
                               "edited?); expected rows exactly as the benchmark wrote them")
        typed_rows.append((where, row))
    return typed_rows


def _check_runs_agree(runs: list[tuple[str, dict[str, Any]]],
                      epochs: list[dict[str, Any]]) -> None:
    """What holds across rows: each run_id once in runs.csv (a row recorded twice, even
    with another seed, would count as one more seed), and each finished run's step time
    in agreement with its epochs (schema.check_step_time). Every command that reads a set
    applies these, so `report` never shows a number `compare` would refuse."""
    by_run: dict[Any, list[dict[str, Any]]] = {}
    for row in epochs:
        by_run.setdefault(row["run_id"], []).append(row)
    first_seen: dict[Any, str] = {}
    for where, row in runs:
        if row["run_id"] in first_seen:
            raise ResultsError(f"{where}: run_id {row['run_id']!r} is recorded already "
                               f"({first_seen[row['run_id']]}); expected each run once")
        first_seen[row["run_id"]] = where.rsplit(": ", 1)[-1]
        check_step_time(row, by_run.get(row["run_id"], []), where)


def check_set_folder(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(the path, its environment), if it is a result set folder (runs.csv and
    environment.json in it) whose environment is readable; else one line saying what it is
    instead. The environment is returned so no caller reads environment.json twice."""
    path = Path(path)
    check_path_length("result set", path)
    try:
        found = (path / RUNS_CSV).is_file() and (path / ENVIRONMENT_JSON).is_file()
    except OSError as exc:  # a symbolic-link loop, an I/O error: one line, no traceback
        raise ResultsError(f"{quoted(path)}: cannot be read ({os_reason(exc)}); expected "
                           "a result set folder") from None
    if not found:
        raise ResultsError(f"{quoted(path)} is not a result set: expected {RUNS_CSV} and "
                           f"{ENVIRONMENT_JSON} in it")
    return path, read_environment(path / ENVIRONMENT_JSON)


def read_set(path: str | Path) -> LoadedSet:
    """One result set, checked in the order a user can fix things: folder, environment,
    schema version, columns, rows, then what rows must agree on. Anything our writer
    would not have written (a newer schema, an extra column, a byte-order mark, CR LF line
    ends, corrupt JSON, a seed written as 0.0, a row cut short, test_accuracy disagreeing
    with test_correct / n_test, a negative step time, a run recorded twice) is a
    ResultsError naming the file and line. Reads nothing else and writes nothing."""
    path, environment = check_set_folder(path)
    version = environment["schema_version"]
    run_columns, epoch_columns = SCHEMAS[version]
    runs = _read_table(path / RUNS_CSV, run_columns, RUN_COLUMNS, version)
    epochs = [row for _, row in _read_table(path / EPOCHS_CSV, epoch_columns, EPOCH_COLUMNS,
                                            version)]
    _check_runs_agree(runs, epochs)
    environment.setdefault("result_set", path.name)
    return LoadedSet(path, environment, version, [row for _, row in runs], epochs)


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...], source: str):
    """A pandas frame of typed rows: nullable ints, floats (NaN for empty), and objects
    (text, booleans, None)."""
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for column in columns:
        values = [row[column] for row in rows]
        kind = COLUMNS[column].kind
        if kind == "int":
            data[column] = pd.array(values, dtype="Int64")
        elif kind in ("float", "fraction"):
            data[column] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            data[column] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(data, columns=list(columns))
    frame[SOURCE] = source
    return frame


def load_result_sets(paths: Sequence[str | Path]):
    """Read and merge result sets (e.g. shards from several runners) into one runs frame,
    one epochs frame and the list of their environments, for report, compare and trend.

    Rows of every schema version come out with the current columns. A column `source`
    names the folder each row came from. Raises ResultsError (one line, naming the path
    and line) for anything `read_set` refuses, or for a set with no runs."""
    import pandas as pd

    if not paths:
        raise UsageError("no result sets given; expected one or more result set folders")
    seen: set[Path] = set()
    runs, epochs, environments = [], [], []
    for path in paths:
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise UsageError(f"{quoted(path)} is given twice; each result set once, or its "
                             "runs would count twice")
        seen.add(resolved)
        loaded = read_set(Path(path).expanduser())
        if not loaded.runs:
            raise ResultsError(f"{quoted(loaded.path / RUNS_CSV)}: no runs recorded; expected "
                               "at least one row (did the session stop before its first run "
                               "finished?)")
        runs.append(_frame(loaded.runs, RUN_COLUMNS, str(loaded.path)))
        epochs.append(_frame(loaded.epochs, EPOCH_COLUMNS, str(loaded.path)))
        environments.append(loaded.environment)
    return (pd.concat(runs, ignore_index=True), pd.concat(epochs, ignore_index=True),
            environments)

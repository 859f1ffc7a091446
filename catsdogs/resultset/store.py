"""Result sets: written all or nothing, append-only, and read back through one checking loader.

A result set is `results/runs/<UTC yyyymmddTHHMMSSZ>_<host>_tf<version>_<device>/` with
`runs.csv` (one row per variant x seed), `epochs.csv` (one row per epoch per run) and
`environment.json`. A new session always creates a new folder, all at once (it is built
under a hidden name and renamed into place); nothing here ever rewrites a row that was
written before. Rows are appended under an exclusive lock by writing the whole file to a
temporary name and renaming it over the old one, so a reader (or a `kill -9`) only ever
sees complete files, and concurrent writers (xdist workers, two processes) never lose
each other's rows.

With schema.py (what each column holds, which columns each version has) this module owns
the format: `ResultSet` writes (in the set's own version, so `--resume` into an older
set keeps it readable by older readers), and `read_set` / `load_result_sets` are the one
loader that `report`, `compare`, `trend` and `--resume` share.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import errno
import io
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

from catsdogs.errors import ResultsError, StorageError, UsageError
from catsdogs.fsutil import atomic_write_all, file_lock, write_new_file
from catsdogs.resultset.schema import (
    COLUMNS,
    ENVIRONMENT_JSON,
    EPOCH_COLUMNS,
    EPOCHS_CSV,
    IMPLIED_IN_OLDER,
    LOCK_FILE,
    ROW_CHECK,
    RUN_COLUMNS,
    RUNS_CSV,
    SCHEMA_VERSION,
    SCHEMAS,
    check_run,
    known_version,
    row_check,
    typed_cell,
)

# ---------------------------------------------------------------- naming


def _slug(text: str) -> str:
    """File-name-safe: letters, digits, dots and dashes only."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unknown"


def result_set_name(now: _dt.datetime, host: str, software: str, device: str) -> str:
    """`<UTC yyyymmddTHHMMSSZ>_<host>_<software>_<device>`: sorts by time, and says where
    and on what it ran, so a new TF version or machine never writes over an old set."""
    stamp = now.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_{_slug(host)}_{_slug(software)}_{_slug(device)}"


def software_label(environment: dict[str, Any]) -> str:
    """What a set's name says it ran on: `tf<version>` on TensorFlow (as before
    --backend), `jax<version>` or `torch<version>` on the others."""
    backend = environment.get("backend") or "tensorflow"
    if backend == "tensorflow":
        return "tf" + str(environment.get("tf_version", "unknown"))
    return backend + str(environment.get(f"{backend}_version") or "unknown")


# ---------------------------------------------------------------- cells and rows


def _cell(value: Any) -> str:
    """CSV cells: booleans as true/false, None as empty, floats at full precision."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _row_cells(columns: tuple[str, ...], row: dict[str, Any]) -> list[str]:
    """A row's cells in column order; the row check (when the schema has one) computed
    over exactly the text that is written."""
    unknown = set(row) - set(columns) - {ROW_CHECK}
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)} for this result set's schema")
    cells = [_cell(row.get(column)) for column in columns if column != ROW_CHECK]
    return cells + [row_check(cells)] if columns[-1] == ROW_CHECK else cells


def _in_version(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """`row` without the columns a newer schema added (an older set resumed keeps its own
    columns); a name no schema knows is kept, so `_row_cells` refuses it."""
    return {key: value for key, value in row.items() if key in columns or key not in COLUMNS}


def _csv_lines(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as dicts of strings, unchecked; [] when the file does not exist.
    For tests and tools that copy rows; readers that trust values use `read_set`."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _append_rows(path: Path, columns: tuple[str, ...], new_rows: list[dict[str, Any]],
                 ) -> str:
    """The file's new text: the old bytes unchanged, the new rows after them. Refuses a
    file whose header is not this schema's or whose last line was cut short."""
    old = path.read_bytes().decode("utf-8", "surrogateescape") if path.exists() else ""
    header = _csv_lines([list(columns)])
    if old and (not old.startswith(header) or not old.endswith("\n")):
        raise ResultsError(f"{path}: its header is not this set's schema or its last line "
                           "is cut short; expected an intact result set (write new runs "
                           "into a new one)")
    rows = [_row_cells(columns, row) for row in new_rows]
    for cells in rows:
        _check_new_row(path, columns, cells)
    return (old or header) + _csv_lines(rows)


def _check_new_row(path: Path, columns: tuple[str, ...], cells: list[str]) -> None:
    """The loader's checks on a row about to be written: a row the loader would refuse
    must never reach the file, where it would make the whole set unreadable."""
    where = f"{path}: new row"
    try:
        row = {column: typed_cell(cell, column, where) for column, cell in zip(columns, cells)}
        if "status" in columns:
            check_run(row, where)
    except ResultsError as exc:
        raise ResultsError(f"not recording it: {exc}") from None


def check_writable(results_dir: str | Path) -> Path:
    """`results_dir/runs`, after checking a file could be made there: a UsageError
    otherwise. Creates and writes nothing (it asks the nearest existing folder, which
    also sees a read-only mount, as root too), so a session refused later (another
    TensorFlow release, bad weights) leaves no trace. Cheap: no TensorFlow needed."""
    runs_root = Path(results_dir) / "runs"
    existing = runs_root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = os.strerror(errno.ENOTDIR)
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = os.strerror(errno.EROFS if _read_only_mount(existing) else errno.EACCES)
    else:
        return runs_root
    raise UsageError(f"--results-dir: cannot write into {str(runs_root)!r} ({existing}: "
                     f"{problem}); expected a writable folder")


def _read_only_mount(path: Path) -> bool:
    """Whether `path` lies on a file system mounted read-only (for the message only)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _made_runs_root(results_dir: str | Path) -> Path:
    """`results_dir/runs`, checked (`check_writable`) and then created."""
    runs_root = check_writable(results_dir)
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--results-dir: cannot create {str(runs_root)!r} "
                         f"({exc.strerror or exc}); expected a writable folder") from None
    return runs_root


# ---------------------------------------------------------------- the result set


class ResultSet:
    """One folder of results. Create a new one with `ResultSet.create`, open an existing
    one (for --resume, or xdist workers joining their controller's set) with `open`."""

    def __init__(self, path: Path, schema_version: int = SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self.schema_version = schema_version
        self.run_columns, self.epoch_columns = SCHEMAS[schema_version]

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, results_dir: str | Path, environment: dict[str, Any],
               now: _dt.datetime | None = None) -> "ResultSet":
        """A new, empty result set under `results_dir/runs/`; never reuses a folder (a
        second session in the same second gets a `-2` suffix). All or nothing: the files
        are written into a hidden folder that is renamed into place only when complete, so
        a full disk leaves no half-made set (StorageError, and nothing left behind)."""
        runs_root = _made_runs_root(results_dir)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        base = result_set_name(now, environment.get("host", socket.gethostname()),
                               software_label(environment),
                               environment.get("device_label",
                                               environment.get("device", "unknown")))
        try:
            partial = Path(tempfile.mkdtemp(prefix=f".{base}.partial-", dir=runs_root))
        except OSError as exc:
            raise StorageError(f"could not create a result set in {runs_root}: "
                               f"{exc.strerror or exc}; nothing was recorded") from None
        try:
            return cls._fill_and_place(partial, runs_root, base, environment, now)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    @classmethod
    def _fill_and_place(cls, partial: Path, runs_root: Path, base: str,
                        environment: dict[str, Any], now: _dt.datetime) -> "ResultSet":
        """Write the three files into `partial`, then rename it to the first free name."""
        for attempt in range(1, 1000):
            name = base if attempt == 1 else f"{base}-{attempt}"
            if (runs_root / name).exists():
                continue
            meta = dict(environment, schema_version=SCHEMA_VERSION, result_set=name,
                        created_utc=now.astimezone(_dt.timezone.utc).isoformat())
            try:
                write_new_file(partial / ENVIRONMENT_JSON,
                               json.dumps(meta, indent=2, sort_keys=True) + "\n")
                write_new_file(partial / RUNS_CSV, _csv_lines([list(RUN_COLUMNS)]))
                write_new_file(partial / EPOCHS_CSV, _csv_lines([list(EPOCH_COLUMNS)]))
                os.rename(partial, runs_root / name)
            except FileExistsError:
                continue
            except StorageError as exc:
                raise StorageError(f"could not create a result set in {runs_root}: "
                                   f"{exc.reason}; nothing was recorded") from None
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:  # another session took the name
                    continue
                raise StorageError(f"could not create result set {runs_root / name}: "
                                   f"{exc.strerror or exc}; nothing was recorded") from None
            return cls(runs_root / name)
        raise UsageError(f"--results-dir: too many result sets named {base!r}")

    @classmethod
    def open(cls, path: str | Path) -> "ResultSet":
        """An existing result set, written in its own schema version; a clear error when
        the folder is not one or its version is unknown (nothing is read beyond that)."""
        path = Path(path)
        if not (path / RUNS_CSV).is_file() or not (path / ENVIRONMENT_JSON).is_file():
            raise ResultsError(f"{str(path)!r} is not a result set: expected {RUNS_CSV} and "
                               f"{ENVIRONMENT_JSON} in it")
        environment = read_environment(path / ENVIRONMENT_JSON)
        return cls(path, environment["schema_version"])

    def environment(self) -> dict[str, Any]:
        return read_environment(self.path / ENVIRONMENT_JSON)

    def runs(self) -> list[dict[str, str]]:
        return read_csv_rows(self.path / RUNS_CSV)

    def epochs(self) -> list[dict[str, str]]:
        return read_csv_rows(self.path / EPOCHS_CSV)

    def done_pairs(self) -> set[tuple[str, int]]:
        """(variant, seed) pairs that already have a row, ok or failed: --resume skips
        them. Read through the checking loader, so a damaged row stops the session."""
        return {(row["variant"], row["seed"]) for row in read_set(self.path).runs}

    def append_run(self, run_row: dict[str, Any], epoch_rows: list[dict[str, Any]]) -> None:
        """Record one finished run: its epochs and its row in runs.csv, under the set's
        lock. Both new files are written to temporary names first and renamed only when
        both are complete, so a full disk (StorageError, one line) leaves both CSVs as
        they were and no temporary file behind."""
        run_row = _in_version(dict(run_row, schema_version=self.schema_version,
                                   result_set=self.name), self.run_columns)
        epoch_rows = [_in_version(dict(row, schema_version=self.schema_version),
                                  self.epoch_columns) for row in epoch_rows]
        runs_path, epochs_path = self.path / RUNS_CSV, self.path / EPOCHS_CSV
        with file_lock(self.path / LOCK_FILE):
            # Every write to a set holds this lock, so a temporary file seen now was left
            # by a writer killed mid-write: it is never read; remove it.
            for stale in self.path.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            read_set(self.path)  # a damaged set is refused, never appended to
            runs_text = _append_rows(runs_path, self.run_columns, [run_row])
            epochs_text = (_append_rows(epochs_path, self.epoch_columns, epoch_rows)
                           if epoch_rows else None)
            try:
                atomic_write_all([(epochs_path, epochs_text), (runs_path, runs_text)])
            except StorageError as exc:
                raise StorageError(f"{exc}; the rows recorded before are intact; add "
                                   f"this run again with --resume {self.path}") from None


# ---------------------------------------------------------------- the one loader

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
    if not path.is_file():
        raise ResultsError(f"{path}: missing; expected the {what} of a result set")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: not readable ({exc.strerror or exc}); expected the "
                           f"{what} of a result set") from None
    if not raw:
        raise ResultsError(f"{path}: empty file; expected the {what} of a result set")
    if raw.startswith(_BOM):
        raise ResultsError(f"{path}: starts with a byte-order mark (saved by an editor?); "
                           "expected plain UTF-8 as the benchmark writes it")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 at byte {exc.start}; expected plain UTF-8 "
                           "as the benchmark writes it") from None


def read_environment(path: Path) -> dict[str, Any]:
    """environment.json as a dict with a known integer `schema_version`."""
    text = _read_text(path, "environment.json")
    try:
        environment = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{path}: not readable JSON ({exc}); expected the environment "
                           "object the benchmark writes") from None
    if not isinstance(environment, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(environment).__name__}")
    environment["schema_version"] = known_version(environment.get("schema_version"), str(path))
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
    schema's and every row is complete: as many fields as the header, and a line end."""
    text = _read_text(path, f"{path.name} (schema {version})")
    if not text.endswith("\n"):
        raise ResultsError(f"{path}: line {text.count(chr(10)) + 1} is cut short (no line "
                           "end); expected complete rows, as the benchmark writes them")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        if header != list(columns):
            raise ResultsError(f"{path}: {_header_problem(header, columns)}; expected schema "
                               f"{version}'s columns (results/README.md)")
        rows = []
        for cells in reader:
            if len(cells) != len(columns):
                raise ResultsError(f"{path}: line {reader.line_num} has {len(cells)} fields; "
                                   f"expected {len(columns)} (was the row cut short?)")
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ResultsError(f"{path}: not a readable CSV ({exc}); expected the benchmark's "
                           "CSV") from None
    return rows


def _read_table(path: Path, columns: tuple[str, ...], current: tuple[str, ...],
                version: int) -> list[dict[str, Any]]:
    """Checked, typed rows of one CSV, keyed by the current schema's columns."""
    typed_rows = []
    for line, cells in _raw_rows(path, columns, version):
        where = f"{path}: line {line}"
        row: dict[str, Any] = dict.fromkeys(current)
        row.update((column, value) for column, value in IMPLIED_IN_OLDER.items()
                   if column in current and column not in columns)
        row.update((column, typed_cell(cell, column, where))
                   for column, cell in zip(columns, cells))
        if row["schema_version"] != version:
            known_version(row["schema_version"], f"{path}: line {line}")
            raise ResultsError(f"{where}: schema_version = {row['schema_version']}; expected "
                               f"{version}, the version in environment.json")
        if "status" in columns:
            check_run(row, where)
        if columns[-1] == ROW_CHECK and row_check(cells[:-1]) != cells[-1]:
            raise ResultsError(f"{where}: {ROW_CHECK} does not match the row (cut short or "
                               "edited?); expected rows exactly as the benchmark wrote them")
        typed_rows.append(row)
    return typed_rows


def read_set(path: str | Path) -> LoadedSet:
    """One result set, checked in the order a user can fix things: folder, environment,
    schema version, columns, rows. Anything our writer would not have written (a newer
    schema, an extra column, a byte-order mark, corrupt JSON, a seed written as 0.0, a row
    cut short, test_accuracy disagreeing with test_correct / n_test) is a ResultsError
    naming the file and line. Reads nothing else and writes nothing."""
    path = Path(path)
    ResultSet.open(path)
    environment = read_environment(path / ENVIRONMENT_JSON)
    version = environment["schema_version"]
    run_columns, epoch_columns = SCHEMAS[version]
    runs = _read_table(path / RUNS_CSV, run_columns, RUN_COLUMNS, version)
    epochs = _read_table(path / EPOCHS_CSV, epoch_columns, EPOCH_COLUMNS, version)
    environment.setdefault("result_set", path.name)
    return LoadedSet(path, environment, version, runs, epochs)


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
            raise UsageError(f"{str(path)!r} is given twice; each result set once, or its "
                             "runs would count twice")
        seen.add(resolved)
        loaded = read_set(Path(path).expanduser())
        if not loaded.runs:
            raise ResultsError(f"{loaded.path / RUNS_CSV}: no runs recorded; expected at least "
                               "one row (did the session stop before its first run finished?)")
        runs.append(_frame(loaded.runs, RUN_COLUMNS, str(loaded.path)))
        epochs.append(_frame(loaded.epochs, EPOCH_COLUMNS, str(loaded.path)))
        environments.append(loaded.environment)
    return (pd.concat(runs, ignore_index=True), pd.concat(epochs, ignore_index=True),
            environments)

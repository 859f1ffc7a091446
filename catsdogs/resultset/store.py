"""Result sets written: all or nothing, append-only, in the set's own schema version.

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
set keeps it readable by older readers); catsdogs.resultset.load reads sets back.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from catsdogs.errors import ResultsError, StorageError, UsageError, os_reason, quoted
from catsdogs.fsutil import atomic_write_all, file_lock, write_new_file
from catsdogs.resultset.load import (
    LoadedSet,
    check_set_folder,
    read_environment,
    read_set,
)
from catsdogs.resultset.outputs import made_runs_root
from catsdogs.resultset.schema import (
    COLUMNS,
    ENVIRONMENT_JSON,
    EPOCH_COLUMNS,
    EPOCHS_CSV,
    LOCK_FILE,
    ROW_CHECK,
    RUN_COLUMNS,
    RUNS_CSV,
    SCHEMA_VERSION,
    SCHEMAS,
    append_problem,
    check_run,
    check_step_time,
    csv_lines,
    row_check,
    typed_cell,
)

# ---------------------------------------------------------------- naming


#: Longest part of a set's name: host, release and device together stay far below the
#: 255 bytes a file system allows a name (a long host name once made the set uncreatable).
_SLUG_MAX = 64


def _slug(text: str) -> str:
    """File-name-safe: letters, digits, dots and dashes only, at most _SLUG_MAX of them."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text)[:_SLUG_MAX].strip("-") or "unknown"


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


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as dicts of strings, unchecked; [] when the file does not exist.
    For tests and tools that copy rows; readers that trust values use `read_set`."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _append_rows(path: Path, columns: tuple[str, ...], cells: list[list[str]]) -> str:
    """The file's new text: the old bytes unchanged, the new rows after them. The loader
    (`_unappendable`) refuses every file this could not append to exactly, and a set is
    read through it before each append; this refusal is the last guard."""
    old = path.read_bytes().decode("utf-8", "surrogateescape") if path.exists() else ""
    header = csv_lines([list(columns)])
    if old and append_problem(old, header):
        raise ResultsError(f"{quoted(path)}: {append_problem(old, header)}; expected an intact "
                           "result set (write new runs into a new one)")
    return (old or header) + csv_lines(cells)


def _typed_new_rows(path: Path, columns: tuple[str, ...], cells: list[list[str]]
                    ) -> list[dict[str, Any]]:
    """The loader's checks on rows about to be written, typed as the loader would type
    them: a row the loader would refuse must never reach the file, where it would make
    the whole set unreadable."""
    where = f"{quoted(path)}: new row"
    rows = []
    for row_cells in cells:
        row = {column: typed_cell(cell, column, where)
               for column, cell in zip(columns, row_cells)}
        if "status" in columns:
            check_run(row, where)
        rows.append(row)
    return rows


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
        runs_root = made_runs_root(results_dir)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        base = result_set_name(now, environment.get("host", socket.gethostname()),
                               software_label(environment),
                               environment.get("device_label",
                                               environment.get("device", "unknown")))
        try:
            partial = Path(tempfile.mkdtemp(prefix=f".{base}.partial-", dir=runs_root))
        except OSError as exc:
            raise StorageError(f"could not create a result set in {quoted(runs_root)}: "
                               f"{os_reason(exc)}; nothing was recorded") from None
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
                write_new_file(partial / RUNS_CSV, csv_lines([list(RUN_COLUMNS)]))
                write_new_file(partial / EPOCHS_CSV, csv_lines([list(EPOCH_COLUMNS)]))
                os.rename(partial, runs_root / name)
            except FileExistsError:
                continue
            except StorageError as exc:
                raise StorageError(f"could not create a result set in {quoted(runs_root)}: "
                                   f"{exc.reason}; nothing was recorded") from None
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:  # another session took the name
                    continue
                raise StorageError(f"could not create result set {quoted(runs_root / name)}: "
                                   f"{os_reason(exc)}; nothing was recorded") from None
            return cls(runs_root / name)
        raise UsageError(f"--results-dir: too many result sets named {base!r}")

    @classmethod
    def open(cls, path: str | Path) -> "ResultSet":
        """An existing result set, written in its own schema version; a clear error when
        the folder is not one or its version is unknown (nothing is read beyond that)."""
        path, environment = check_set_folder(path)
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
        run_cells = [_row_cells(self.run_columns, run_row)]
        epoch_cells = [_row_cells(self.epoch_columns, row) for row in epoch_rows]
        try:
            with file_lock(self.path / LOCK_FILE):
                # Every write to a set holds this lock, so a temporary file seen now was
                # left by a writer killed mid-write: it is never read; remove it.
                for stale in self.path.glob(".*.tmp"):
                    stale.unlink(missing_ok=True)
                recorded = read_set(self.path)  # a damaged set is refused, never appended to
                self._check_new_rows(recorded, run_cells, epoch_cells)
                runs_text = _append_rows(runs_path, self.run_columns, run_cells)
                epochs_text = (_append_rows(epochs_path, self.epoch_columns, epoch_cells)
                               if epoch_cells else None)
                atomic_write_all([(epochs_path, epochs_text), (runs_path, runs_text)])
        except OSError as exc:  # removing a stale temporary file on a read-only volume
            raise StorageError(f"could not write into {quoted(self.path)}: {os_reason(exc)}; "
                               "the rows recorded before are intact; add this run again with "
                               f"--resume {quoted(self.path)}") from None
        except StorageError as exc:
            raise StorageError(f"{exc}; the rows recorded before are intact; add "
                               f"this run again with --resume {quoted(self.path)}") from None

    def _check_new_rows(self, recorded: "LoadedSet", run_cells: list[list[str]],
                        epoch_cells: list[list[str]]) -> None:
        """Every check the loader applies, applied to the rows about to be written (the
        cells, the run's step time against its epochs, its run_id unique in the set), so
        no bug can write a row that makes the whole set unreadable."""
        runs_path = self.path / RUNS_CSV
        try:
            (run,) = _typed_new_rows(runs_path, self.run_columns, run_cells)
            epochs = _typed_new_rows(self.path / EPOCHS_CSV, self.epoch_columns, epoch_cells)
            if any(row["run_id"] == run["run_id"] for row in recorded.runs):
                raise ResultsError(f"{quoted(runs_path)}: new row: run_id {run['run_id']!r} "
                                   "is recorded already; expected each run once")
            check_step_time(run, epochs, f"{quoted(runs_path)}: new row")
        except ResultsError as exc:
            raise ResultsError(f"not recording it: {exc}") from None

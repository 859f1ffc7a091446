"""Result sets: versioned, append-only folders of CSVs with provenance on every row.

A result set is `results/runs/<UTC yyyymmddTHHMMSSZ>_<host>_tf<version>_<device>/` with
`runs.csv` (one row per variant x seed), `epochs.csv` (one row per epoch per run) and
`environment.json`. A new session always creates a new folder; nothing here ever rewrites
a row that was written before. Rows are appended under an exclusive lock by writing the
whole file to a temporary name and renaming it over the old one, so a reader (or a
`kill -9`) only ever sees complete files, and concurrent writers (xdist workers, two
processes) never lose each other's rows.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterable

from catsdogs.errors import ResultsError, UsageError
from catsdogs.fsutil import atomic_write, file_lock

SCHEMA_VERSION = 1

RUN_COLUMNS: tuple[str, ...] = (
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

EPOCH_COLUMNS: tuple[str, ...] = (
    "schema_version", "run_id", "variant", "seed", "epoch", "loss", "accuracy", "val_loss",
    "val_accuracy", "epoch_s", "train_s", "steps", "step_ms_median",
)

RUNS_CSV = "runs.csv"
EPOCHS_CSV = "epochs.csv"
ENVIRONMENT_JSON = "environment.json"
LOCK_FILE = ".lock"


# ---------------------------------------------------------------- naming


def _slug(text: str) -> str:
    """File-name-safe: letters, digits, dots and dashes only."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unknown"


def result_set_name(now: _dt.datetime, host: str, tf_version: str, device: str) -> str:
    """`<UTC yyyymmddTHHMMSSZ>_<host>_tf<version>_<device>`: sorts by time, and says where
    and on what it ran, so a new TF version or machine never writes over an old set."""
    stamp = now.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_{_slug(host)}_tf{_slug(tf_version)}_{_slug(device)}"


# ---------------------------------------------------------------- atomic, locked writes


def _csv_text(columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="raise",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """CSV cells: booleans as true/false, None as empty, floats at full precision."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as dicts of strings; [] when the file does not exist."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _append_rows(path: Path, columns: tuple[str, ...], new_rows: list[dict[str, Any]]) -> None:
    """Append by rewriting: old rows are copied through unchanged, the new ones follow."""
    unknown = set().union(*(row.keys() for row in new_rows)) - set(columns) if new_rows else set()
    if unknown:
        raise ValueError(f"{path.name}: unknown columns {sorted(unknown)}")
    old = read_csv_rows(path)
    if old and list(old[0].keys()) != list(columns):
        raise ResultsError(f"{path}: its columns differ from schema {SCHEMA_VERSION}; "
                           "write new runs into a new result set")
    rows = old + [{column: row.get(column) for column in columns} for row in new_rows]
    atomic_write(path, _csv_text(columns, rows))


def check_writable(results_dir: str | Path) -> Path:
    """`results_dir/runs`, created if needed, after proving we can write a file there (a
    UsageError otherwise). Cheap, so `catsdogs run` calls it before loading TensorFlow."""
    runs_root = Path(results_dir) / "runs"
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
        probe = runs_root / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--results-dir: cannot write into {str(runs_root)!r} "
                         f"({exc.strerror or exc}); expected a writable folder") from None
    return runs_root


# ---------------------------------------------------------------- the result set


class ResultSet:
    """One folder of results. Create a new one with `ResultSet.create`, open an existing
    one (for --resume, or xdist workers joining their controller's set) with `open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, results_dir: str | Path, environment: dict[str, Any],
               now: _dt.datetime | None = None) -> "ResultSet":
        """A new, empty result set under `results_dir/runs/`; never reuses a folder (a
        second session in the same second gets a `-2` suffix)."""
        runs_root = check_writable(results_dir)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        base = result_set_name(now, environment.get("host", socket.gethostname()),
                               environment.get("tf_version", "unknown"),
                               environment.get("device_label",
                                               environment.get("device", "unknown")))
        for attempt in range(1, 1000):
            path = runs_root / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            result_set = cls(path)
            meta = dict(environment, schema_version=SCHEMA_VERSION, result_set=path.name,
                        created_utc=now.astimezone(_dt.timezone.utc).isoformat())
            atomic_write(path / ENVIRONMENT_JSON, json.dumps(meta, indent=2, sort_keys=True)
                          + "\n")
            atomic_write(path / RUNS_CSV, _csv_text(RUN_COLUMNS, []))
            atomic_write(path / EPOCHS_CSV, _csv_text(EPOCH_COLUMNS, []))
            return result_set
        raise UsageError(f"--results-dir: too many result sets named {base!r}")

    @classmethod
    def open(cls, path: str | Path) -> "ResultSet":
        """An existing result set; a clear error when the folder is not one."""
        path = Path(path)
        if not (path / RUNS_CSV).is_file() or not (path / ENVIRONMENT_JSON).is_file():
            raise ResultsError(f"{str(path)!r} is not a result set: expected {RUNS_CSV} and "
                               f"{ENVIRONMENT_JSON} in it")
        return cls(path)

    def environment(self) -> dict[str, Any]:
        with open(self.path / ENVIRONMENT_JSON) as handle:
            return json.load(handle)

    def runs(self) -> list[dict[str, str]]:
        return read_csv_rows(self.path / RUNS_CSV)

    def epochs(self) -> list[dict[str, str]]:
        return read_csv_rows(self.path / EPOCHS_CSV)

    def done_pairs(self) -> set[tuple[str, int]]:
        """(variant, seed) pairs that already have a row, ok or failed: --resume skips them."""
        return {(row["variant"], int(row["seed"])) for row in self.runs()}

    def append_run(self, run_row: dict[str, Any], epoch_rows: list[dict[str, Any]]) -> None:
        """Record one finished run: its epochs first, then its row in runs.csv, so a
        runs.csv row always has its epochs behind it. Both under the set's lock."""
        run_row = dict(run_row, schema_version=SCHEMA_VERSION, result_set=self.name)
        epoch_rows = [dict(row, schema_version=SCHEMA_VERSION) for row in epoch_rows]
        with file_lock(self.path / LOCK_FILE):
            # Every write to a set holds this lock, so a temporary file seen now was left
            # by a writer killed mid-write: it is never read; remove it.
            for stale in self.path.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            if epoch_rows:
                _append_rows(self.path / EPOCHS_CSV, EPOCH_COLUMNS, epoch_rows)
            _append_rows(self.path / RUNS_CSV, RUN_COLUMNS, [run_row])

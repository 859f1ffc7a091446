"""Interruptions (issue 6), with real processes and real signals.

- `catsdogs run` stopped by SIGTERM (runner pre-emption) and then by SIGINT (Ctrl-C)
  keeps every finished row, writes no partial one, exits 130 and says how to resume;
  `--resume RESULT_SET` then runs only the missing (variant, seed) pairs, each once.
- a SIGTERM before the first run finishes leaves no (empty) result set at all.
- `kill -9` at random moments of a loop of appends leaves runs.csv and epochs.csv
  parseable, with every row complete and every earlier row unchanged.
"""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_real_subset

from catsdogs.resultset.load import read_set
from catsdogs.resultset.schema import COLUMNS, EPOCH_COLUMNS, RUN_COLUMNS, SCHEMA_VERSION
from catsdogs.resultset.store import ResultSet

SEEDS = (0, 1, 2, 3)


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}


def parse(path: Path, columns) -> list[dict[str, str]]:
    """Rows of a CSV, failing on anything but complete rows of exactly `columns`."""
    text = path.read_text()
    assert text.endswith("\n"), f"{path} ends mid-line"
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == list(columns), f"{path}: header {header}"
    rows = []
    for number, cells in enumerate(reader, 2):
        assert len(cells) == len(columns), f"{path} line {number}: {len(cells)} cells"
        rows.append(dict(zip(columns, cells)))
    return rows


# ---------------------------------------------------------------- catsdogs run + signals


class Session:
    """`catsdogs run` on a tiny real subset, as a background process."""

    def __init__(self, root: Path, data: Path) -> None:
        self.root, self.data = root, data
        self.results = root / "results"
        self.count = 0

    def start(self, *more: str) -> subprocess.Popen:
        self.count += 1
        self.err = self.root / f"stderr-{self.count}.txt"
        self.out = self.root / f"stdout-{self.count}.txt"
        return subprocess.Popen(
            [sys.executable, "-m", "catsdogs", "run", "--data-dir", str(self.data),
             "--results-dir", str(self.results), "--variants", "model1", "--seeds",
             ",".join(map(str, SEEDS)), "--epochs", "1", "--limit", "5", "--batch-size", "8",
             *more],
            stdout=open(self.out, "w"), stderr=open(self.err, "w"), env=_environ())

    def result_set(self) -> Path | None:
        runs = self.results / "runs"
        sets = sorted(runs.iterdir()) if runs.is_dir() else []
        assert len(sets) <= 1, sets
        return sets[0] if sets else None

    def rows(self) -> list[dict[str, str]]:
        found = self.result_set()  # its folder exists a moment before its runs.csv
        return parse(found / "runs.csv", RUN_COLUMNS) if found and (
            found / "runs.csv").exists() else []

    def signal_after(self, proc: subprocess.Popen, rows: int, signum: int,
                     timeout: float = 240) -> tuple[int, str]:
        """Wait until runs.csv has `rows` rows, send `signum`, return (exit code, stderr)."""
        deadline = time.monotonic() + timeout
        while len(self.rows()) < rows:
            assert proc.poll() is None, self.err.read_text()[-3000:]
            assert time.monotonic() < deadline, "no row recorded in time"
            time.sleep(0.05)
        proc.send_signal(signum)
        return proc.wait(timeout=120), self.err.read_text()


def assert_complete(result_set: Path, done: int) -> list[dict[str, str]]:
    """`done` complete, successful rows, each with exactly its one epoch row."""
    runs = parse(result_set / "runs.csv", RUN_COLUMNS)
    epochs = parse(result_set / "epochs.csv", EPOCH_COLUMNS)
    assert len(runs) == done
    for row in runs:
        assert row["status"] == "ok" and row["error"] == "", row
        for key in ("run_id", "test_accuracy", "step_time_ms", "finished_utc", "tf_version"):
            assert row[key], (key, row)
    assert sorted(e["run_id"] for e in epochs) == sorted(r["run_id"] for r in runs)
    return runs


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, real_data_dir):
    """SIGTERM during the first session, SIGINT during a resumed one, then a resume that
    finishes; each step's exit code, stderr and the rows as they were after it."""
    root = tmp_path_factory.mktemp("interrupt")
    data = root / "cats_and_dogs_filtered"
    copy_real_subset(real_data_dir, data, {"train": 5, "validation": 5})
    session = Session(root, data)
    steps = {}
    code, err = session.signal_after(session.start(), 1, signal.SIGTERM)
    result_set = session.result_set()
    steps["sigterm"] = (code, err, (result_set / "runs.csv").read_text())
    first = len(session.rows())
    assert first <= len(SEEDS) - 2, "the first session finished too early to test resuming"
    code, err = session.signal_after(session.start("--resume", str(result_set)), first + 1,
                                     signal.SIGINT)
    steps["sigint"] = (code, err, (result_set / "runs.csv").read_text())
    proc = session.start("--resume", str(result_set))
    code = proc.wait(timeout=300)
    steps["resume"] = (code, session.err.read_text(), (result_set / "runs.csv").read_text(),
                       session.out.read_text())
    return result_set, steps


@pytest.mark.slow
def test_sigterm_keeps_finished_rows_exits_130_and_says_how_to_resume(interrupted):
    result_set, steps = interrupted
    code, err, text = steps["sigterm"]
    assert code == 130, err[-3000:]
    assert "Traceback" not in err
    assert f"interrupted (signal {int(signal.SIGTERM)})" in err
    assert f"add the missing ones with --resume {result_set}" in err
    done = text.count("\n") - 1
    assert 1 <= done < len(SEEDS)
    assert f"{done} finished run(s) are recorded" in err


@pytest.mark.slow
def test_sigint_during_a_resumed_session_keeps_every_row(interrupted):
    result_set, steps = interrupted
    before = steps["sigterm"][2]
    code, err, text = steps["sigint"]
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted (Ctrl-C)" in err
    assert f"--resume {result_set}" in err
    assert text.startswith(before)  # rows of the first session, byte for byte
    missing = len(SEEDS) - (before.count("\n") - 1)
    assert f"[1/{missing}]" in err  # it scheduled only the pairs without a row


@pytest.mark.slow
def test_resume_runs_only_the_missing_pairs_each_exactly_once(interrupted):
    result_set, steps = interrupted
    before = steps["sigint"][2]
    code, err, text, out = steps["resume"]
    assert code == 0, err[-3000:]
    assert text.startswith(before)
    missing = len(SEEDS) - (before.count("\n") - 1)
    assert missing >= 1 and f"[1/{missing}]" in err and f"[{missing + 1}/" not in err
    runs = assert_complete(result_set, len(SEEDS))
    assert sorted((r["variant"], int(r["seed"])) for r in runs) == [
        ("baseline_cnn", seed) for seed in SEEDS]
    assert str(result_set) in out  # the final table names the set


@pytest.mark.slow
def test_sigterm_before_the_first_run_finishes_leaves_no_empty_set(tmp_path, real_data_dir):
    """Issue 24: a SIGTERM during the first run used to leave a header-only set (which
    `report` then refuses: no runs recorded). The set is made with the first finished
    run, so an interruption before it leaves none at all."""
    data = tmp_path / "cats_and_dogs_filtered"
    copy_real_subset(real_data_dir, data, {"train": 5, "validation": 5})
    session = Session(tmp_path, data)
    proc = session.start("--epochs", "200")  # the first run outlasts the signal
    deadline = time.monotonic() + 240
    while "[1/" not in (session.err.read_text() if session.err.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, session.err.read_text()
        time.sleep(0.05)
    time.sleep(0.5)  # inside the first training now
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    err = session.err.read_text()
    assert "Traceback" not in err
    assert f"interrupted (signal {int(signal.SIGTERM)}) before the first run finished; " \
           "nothing was recorded" in err
    runs = session.results / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


# ---------------------------------------------------------------- kill -9 mid-write

WRITER = r"""
import sys
from catsdogs.resultset.store import COLUMNS, EPOCH_COLUMNS, RUN_COLUMNS, ResultSet

path, tag = sys.argv[1], sys.argv[2]
result_set = ResultSet.open(path)
pad = "x" * 200  # rows of ~5 kB: the rewritten file grows, so writes take real time
TEXT = [c for c in RUN_COLUMNS if COLUMNS[c].kind == "text"
        and c not in ("result_set", "status", "row_sha256")]
for i in range(1_000_000):
    run_id = f"{tag}-{i}"
    row = {c: f"{c}:{run_id}:{pad}" for c in TEXT}
    row.update(run_id=run_id, seed=i, status="failed")
    epochs = [{"run_id": run_id, "variant": row["variant"], "seed": i, "epoch": e,
               "loss": float(e)} for e in range(2)]
    result_set.append_run(row, epochs)
    print(i, flush=True)
"""


def _check_killed_set(result_set: Path, previous: str) -> tuple[str, set[str]]:
    """Both CSVs parse, every row is whole (each cell exactly what was written), earlier
    rows are unchanged, every run row has its epochs; returns runs.csv and orphan ids."""
    runs_text = (result_set / "runs.csv").read_text()
    assert runs_text.startswith(previous)
    runs = parse(result_set / "runs.csv", RUN_COLUMNS)
    for row in runs:
        run_id = row["run_id"]
        for column in RUN_COLUMNS:
            if COLUMNS[column].kind == "text" and column not in (
                    "run_id", "result_set", "status", "row_sha256"):
                assert row[column] == f"{column}:{run_id}:{'x' * 200}", (column, run_id)
        assert row["schema_version"] == str(SCHEMA_VERSION)
        assert row["result_set"] == result_set.name
    epochs = parse(result_set / "epochs.csv", EPOCH_COLUMNS)
    for row in epochs:
        assert row["loss"] in ("0.0", "1.0"), row
    read_set(result_set)  # the one loader accepts what the killed writers left
    ids = {row["run_id"] for row in runs}
    per_run = {run_id: sum(e["run_id"] == run_id for e in epochs) for run_id in ids}
    assert set(per_run.values()) <= {2}, per_run  # a recorded run has both epoch rows
    orphans = {e["run_id"] for e in epochs} - ids
    return runs_text, orphans


def test_kill_9_at_random_moments_leaves_every_csv_parseable(tmp_path):
    rng = random.Random(6)
    result_set = ResultSet.create(tmp_path / "results", {"host": "h", "tf_version": "x",
                                                         "device": "cpu"})
    previous, orphan_runs, rounds = (result_set.path / "runs.csv").read_text(), set(), 10
    for round_ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(result_set.path),
                                 f"k{round_}"], stdout=subprocess.PIPE, text=True,
                                env=_environ())
        assert proc.stdout.readline(), "the writer recorded nothing"
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        previous, orphans = _check_killed_set(result_set.path, previous)
        new = orphans - orphan_runs
        # Killed between the two files at most: one run's epochs without its row, which
        # reports ignore (they join epochs to runs) and --resume re-runs.
        assert len(new) <= 1, new
        orphan_runs |= orphans
    assert len(parse(result_set.path / "runs.csv", RUN_COLUMNS)) >= rounds
    # The set is still appendable; temporary files of killed writers are cleared then.
    result_set.append_run({"run_id": "after", "variant": "v", "seed": 10**9, "status": "failed"},
                          [])
    assert result_set.runs()[-1]["run_id"] == "after"
    assert not list(result_set.path.glob(".*.tmp"))

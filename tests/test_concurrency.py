"""Concurrent writers (issue 6): two real processes appending to one result set at the same
time (xdist workers, or two sessions resuming one set) lose no row and corrupt no file.

Two `catsdogs run --resume` sessions on one set are not tested: each decides which pairs
are missing when it starts, so both would train (and record) the same pairs; run
parallel sessions with --shard K/N instead, which splits the matrix without overlap.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time

from catsdogs.resultset.load import read_set
from catsdogs.resultset.schema import EPOCH_COLUMNS, RUN_COLUMNS, SCHEMA_VERSION
from catsdogs.resultset.store import ResultSet

PER_WRITER = 50

WRITER = r"""
import sys, time
from pathlib import Path
from catsdogs.resultset.store import COLUMNS, RUN_COLUMNS, ResultSet

path, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
result_set = ResultSet.open(path)
TEXT = [c for c in RUN_COLUMNS if COLUMNS[c].kind == "text"
        and c not in ("result_set", "status", "row_sha256")]
while not go.exists():  # start together
    time.sleep(0.001)
print("start", time.time(), flush=True)
for i in range(count):
    run_id = f"{tag}-{i:03d}"
    row = {c: f"{c}:{run_id}" for c in TEXT}
    row.update(run_id=run_id, seed=i, status="failed",
               error=f"a, quoted \"cell\"\nover two lines {run_id}")
    epochs = [{"run_id": run_id, "variant": row["variant"], "seed": i, "epoch": e}
              for e in (1, 2)]
    result_set.append_run(row, epochs)
print("end", time.time(), flush=True)
"""


def _rows(text: str, columns) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == list(columns)
    rows = []
    for cells in reader:
        assert len(cells) == len(columns), cells
        rows.append(dict(zip(columns, cells)))
    return rows


def test_two_processes_appending_to_one_set_lose_and_corrupt_nothing(tmp_path):
    result_set = ResultSet.create(tmp_path / "results", {"host": "h", "tf_version": "x",
                                                         "device": "cpu"})
    early = 10**6  # a seed no writer uses
    result_set.append_run({"run_id": "earlier", "variant": "v", "seed": early, "status": "failed"},
                          [{"run_id": "earlier", "variant": "v", "seed": early, "epoch": 0}])
    earlier = (result_set.path / "runs.csv").read_text()
    go = tmp_path / "go"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(result_set.path), tag,
                                 str(PER_WRITER), str(go)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=environ)
               for tag in ("a", "b")]
    time.sleep(0.5)  # both interpreters up and waiting
    go.touch()
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        stamps = dict(line.split() for line in out.splitlines())
        spans.append((float(stamps["start"]), float(stamps["end"])))
    # They really ran at the same time.
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans

    text = (result_set.path / "runs.csv").read_text()
    assert text.startswith(earlier)  # the row already recorded is untouched
    runs = _rows(text, RUN_COLUMNS)
    ids = [row["run_id"] for row in runs]
    assert len(ids) == len(set(ids)) == 1 + 2 * PER_WRITER
    for tag in ("a", "b"):  # each writer's rows, all there, in its own order
        assert [i for i in ids if i.startswith(f"{tag}-")] == [f"{tag}-{i:03d}"
                                                              for i in range(PER_WRITER)]
    for row in runs[1:]:
        run_id = row["run_id"]
        assert row["error"] == f"a, quoted \"cell\"\nover two lines {run_id}"
        assert row["variant"] == f"variant:{run_id}" and row["host"] == f"host:{run_id}"
        assert row["schema_version"] == str(SCHEMA_VERSION)
        assert row["result_set"] == result_set.name
    epochs = _rows((result_set.path / "epochs.csv").read_text(), EPOCH_COLUMNS)
    assert sorted((e["run_id"], e["epoch"]) for e in epochs) == sorted(
        [("earlier", "0")] + [(run_id, epoch) for run_id in ids[1:] for epoch in ("1", "2")])
    assert not list(result_set.path.glob(".*.tmp"))
    # And a reader sees the same rows the files hold.
    assert [row["run_id"] for row in result_set.runs()] == ids
    assert [row["run_id"] for row in read_set(result_set.path).runs] == ids

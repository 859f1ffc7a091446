"""Issue 23's acceptance on this machine, with real training (tiny: synthetic data, --limit 4,
2 epochs, model1, seed 0), real `taskset` and real CPU-bound neighbours:

- a set trained under `taskset -c 0` and one trained unpinned carry different machine
  fingerprints (the usable CPUs are a fingerprint fact), and `compare` between them gives
  no step-time verdict and names the difference;
- a set trained beside two CPU-bound processes is flagged contended in its row and its
  report.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = ("run", "--synthetic", "--limit", "4", "--epochs", "2", "--variants", "model1",
        "--seeds", "0")


def _catsdogs(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    return subprocess.run([*prefix, sys.executable, "-m", "catsdogs", *args],
                          capture_output=True, text=True, env=environ, timeout=300)


def _trained(results: Path, prefix: tuple[str, ...] = ()) -> tuple[Path, dict[str, str]]:
    """(the new result set, its one row) of a tiny run into `results`."""
    out = _catsdogs(*TINY, "--results-dir", str(results), prefix=prefix)
    assert out.returncode == 0, out.stderr[-2000:]
    (folder,) = (results / "runs").iterdir()
    (row,) = csv.DictReader(open(folder / "runs.csv"))
    return folder, row


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two usable CPUs and taskset")
def test_pinned_and_unpinned_sets_are_different_machines_to_compare(tmp_path):
    pinned, pinned_row = _trained(tmp_path / "pinned", ("taskset", "-c", "0"))
    free, free_row = _trained(tmp_path / "free")
    assert pinned_row["machine_fingerprint"] != free_row["machine_fingerprint"]
    usable = len(os.sched_getaffinity(0))
    out = _catsdogs("compare", str(pinned), str(free))
    assert out.returncode == 0, out.stderr[-2000:]
    step = [line for line in out.stdout.splitlines() if " step time: " in line]
    assert step == [f"not comparable baseline_cnn step time: not comparable: different "
                    f"machines (usable CPUs (affinity) 1 vs {usable}); pass "
                    "--allow-different-machines to compare them anyway"]
    assert _catsdogs("compare", str(pinned), str(free), "--strict").returncode == 3


def test_a_set_trained_beside_two_cpu_bound_processes_is_flagged_contended(tmp_path):
    """Two on this project's 2-core machine; one per usable CPU where there are more, so
    the neighbours take the same share of the capacity."""
    spin = [sys.executable, "-c", "while True: pass"]
    count = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
    neighbours = [subprocess.Popen(spin) for _ in range(count)]
    try:
        folder, row = _trained(tmp_path / "busy")
    finally:
        for process in neighbours:
            process.kill()
            process.wait()
    assert row["contended"] == "true", row
    assert float(row["contention"]) > 0.25
    epochs = list(csv.DictReader(open(folder / "epochs.csv")))
    assert all(float(e["other_cpu_s"]) > 0 for e in epochs)
    report = _catsdogs("report", str(folder), "--out", str(tmp_path / "report"), "--no-samples")
    assert report.returncode == 0, report.stderr[-2000:]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "CONTENDED: 1 run(s) (baseline_cnn seed 0)" in page
    assert "CONTENDED: 1 run(s)" in report.stdout

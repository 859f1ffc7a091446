"""The command line as a user meets it: real subprocesses, real data, real exit codes."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from catsdogs.dataset.scan import KNOWN_FINGERPRINT
from catsdogs.resultset.schema import RUN_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout=600):
    return subprocess.run([sys.executable, "-m", "catsdogs", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO,
                          env={**os.environ, **(env or {})})


def test_data_prints_official_counts_and_fingerprint(real_data_dir):
    out = run_cli("data", "--data-dir", str(real_data_dir))
    assert out.returncode == 0, out.stderr
    assert "train           1000    1000    2000" in out.stdout
    assert "validation       500     500    1000" in out.stdout
    assert KNOWN_FINGERPRINT in out.stdout and "There are 1000 dogs and 1000 cats" in out.stdout


def test_data_without_data_or_network_is_one_line_and_exit_2(tmp_path):
    out = run_cli("data", env={"KERAS_HOME": str(tmp_path / "keras"), "CATSDOGS_DATA": ""})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--data-dir" in lines[0] and "--synthetic" in lines[0], lines
    assert "Traceback" not in out.stderr


def _only_result_set(results: Path) -> Path:
    sets = sorted((results / "runs").iterdir())
    assert len(sets) == 1, sets
    return sets[0]


@pytest.mark.slow
def test_bench_on_real_data_records_rows_with_the_known_fingerprint(tmp_path, real_data_dir):
    """The bench's real-data acceptance run, shrunk: two variants, --limit, one epoch."""
    results = tmp_path / "results"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "-k", "test_train", "--benchmark-only", "-q",
         "-p", "no:cacheprovider", "--data-dir", str(real_data_dir), "--limit", "10", "--epochs",
         "1", "--variants", "model1,model3", "--seeds", "0", "--weights", "none",
         "--results-dir", str(results), "--benchmark-json", str(tmp_path / "bench.json")],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = list(csv.DictReader(open(_only_result_set(results) / "runs.csv")))
    assert [(r["alias"], r["status"]) for r in rows] == [("model1", "ok"), ("model3", "ok")]
    for row in rows:
        assert list(row) == list(RUN_COLUMNS)
        assert row["dataset"] == "real" and row["dataset_fingerprint"] == KNOWN_FINGERPRINT
        assert row["pretrained"] == "false" and row["n_train"] == "20"
        for column in ("test_accuracy", "step_time_ms", "params_total", "tf_version",
                       "keras_version", "python_version", "device", "git_commit"):
            assert row[column] != "", column
    report = json.load(open(tmp_path / "bench.json"))
    infos = [bench["extra_info"] for bench in report["benchmarks"]]
    assert {info["variant"] for info in infos} == {"baseline_cnn", "preprocessed_cnn"}
    assert all("test_accuracy" in info and info["dataset"] == "real" for info in infos)
    assert report["machine_info"]["catsdogs"]["tf_version"]


@pytest.mark.slow
def test_run_prints_progress_and_a_table(tmp_path):
    out = run_cli("run", "--synthetic", "--epochs", "2", "--variants", "model1", "--seeds",
                  "3", "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "epoch   1/2" in out.stderr and "epoch   2/2" in out.stderr
    # A pipe is a log: plain lines, each epoch with the ETAs, no cursor control.
    assert "[1/1] baseline_cnn seed 3, 2 epochs" in out.stderr
    assert re.search(r"epoch +2/2 .*ETA run 0s, matrix 0s", out.stderr), out.stderr
    assert "\x1b[" not in out.stderr and "\r" not in out.stderr
    assert "baseline" in out.stdout.lower() and "50% baseline" in out.stdout
    rows = list(csv.DictReader(open(_only_result_set(tmp_path) / "runs.csv")))
    assert rows[0]["dataset"] == "synthetic" and rows[0]["seed"] == "3"
    epochs = list(csv.DictReader(open(_only_result_set(tmp_path) / "epochs.csv")))
    assert [e["epoch"] for e in epochs] == ["1", "2"]


def test_help_says_what_each_command_does_for_the_user():
    top = run_cli("--help")
    assert top.returncode == 0 and "thin layer" not in top.stdout
    assert "new TensorFlow" in top.stdout and "catsdogs run --epochs 1" in top.stdout
    for command, example in (("run", "catsdogs run --resume"), ("data", "catsdogs data"),
                             ("speed", "catsdogs speed --limit")):
        out = run_cli(command, "--help")
        assert out.returncode == 0, out.stderr
        assert "examples:" in out.stdout and example in out.stdout, (command, out.stdout)
    assert "CATSDOGS_<NAME>" in run_cli("run", "--help").stdout

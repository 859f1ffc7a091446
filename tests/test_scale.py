"""Scaling past one device with the engines that exist: `--shard K/N` across runners,
`--strategy mirrored` inside one, pytest-xdist workers writing into one result set; and
the per-run options that change speed (--mixed-precision, --xla) recorded in runs.csv.

On this CPU-only machine --strategy mirrored has one replica here and --mixed-precision
is checked only as recorded; tests/test_gpu_paths.py trains two replicas (on a CPU split
in two) and looks inside a mixed-precision model (float32 logits, loss scaling).

Real images, --limit 10, one epoch of model1. The shards and the xdist session are real
subprocesses, started together (they are independent, so their TensorFlow start-ups
overlap) while the unsharded reference runs in this process; each test then waits for
the processes it checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from catsdogs.resultset.store import ResultSet

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--limit", "10", "--epochs", "1", "--variants", "model1"]
ACCURACY_COLUMNS = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss",
                    "val_loss", "test_loss", "test_correct")


def _env() -> dict[str, str]:
    """The caller's environment less any CATSDOGS_* option, so only our flags count."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CATSDOGS_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(process: subprocess.Popen, expected: int = 0, timeout: float = 600) -> str:
    """Wait; the stdout of a process that exited `expected`, else a failure with its output."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == expected, (f"{' '.join(process.args[1:])} exited "
                                     f"{process.returncode}\n{out[-2000:]}\n{err[-3000:]}")
    return out


def _only_result_set(results_dir: Path) -> ResultSet:
    found = sorted((results_dir / "runs").iterdir())
    assert len(found) == 1, f"expected one result set in {results_dir}, found {found}"
    return ResultSet.open(found[0])


@pytest.fixture(scope="module")
def started(real_data_dir, tmp_path_factory):
    """The subprocesses of this module, started at once: name -> (process, results dir)."""
    root = tmp_path_factory.mktemp("scale")
    common = ["--data-dir", str(real_data_dir), *SMALL, "--seeds", "0,1"]
    commands = {
        "shard1": ["-m", "catsdogs", "run", *common, "--deterministic", "--shard", "1/2"],
        "shard2": ["-m", "catsdogs", "run", *common, "--deterministic", "--shard", "2/2"],
        "xdist": ["-m", "pytest", "bench", "-n", "2", "--benchmark-only", "-q",
                  "-p", "no:cacheprovider", *common],
        # model2 has a layer (RandomRotation) that Keras cannot compile with XLA
        "xla": ["-m", "catsdogs", "run", "--data-dir", str(real_data_dir), *SMALL[:4],
                "--variants", "model1,model2", "--seeds", "0", "--xla"],
    }
    jobs = {name: (_start([*args, "--results-dir", str(root / name)]), root / name)
            for name, args in commands.items()}
    yield jobs
    for process, _ in jobs.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def _run_in_process(raw: dict, results_dir: Path) -> ResultSet:
    """What `catsdogs run` does, in this process: prepare, a new result set, every pending
    (variant, seed) pair run and recorded."""
    from catsdogs.options import resolve
    from catsdogs.training import runner

    options = resolve({"limit": "10", "epochs": "1", "variants": "model1", "seeds": "0",
                       **raw, "results_dir": str(results_dir)}, environ={})
    prepared = runner.prepare(options)
    result_set = runner.open_result_set(prepared)
    for variant, seed in runner.pending(prepared):
        runner.run_and_record(prepared, result_set, variant, seed)
    return result_set


@pytest.fixture(scope="module")
def shards(started, real_data_dir, tmp_path_factory):
    """The unsharded run (in this process, while the shards run as two `catsdogs run`
    subprocesses) and the result sets of both shards."""
    unsharded = _run_in_process({"data_dir": str(real_data_dir), "seeds": "0,1",
                                 "deterministic": True},
                                tmp_path_factory.mktemp("unsharded"))
    for name in ("shard1", "shard2"):
        _finish(started[name][0])
    return {"unsharded": unsharded,
            **{name: _only_result_set(started[name][1]) for name in ("shard1", "shard2")}}


def _by_pair(result_set: ResultSet) -> dict[tuple[str, int], dict[str, str]]:
    rows = result_set.runs()
    pairs = {(row["variant"], int(row["seed"])): row for row in rows}
    assert len(pairs) == len(rows), f"duplicate (variant, seed) rows in {result_set.path}"
    return pairs


def test_two_shards_together_are_exactly_the_unsharded_run(shards):
    full, one, two = (_by_pair(shards[name]) for name in ("unsharded", "shard1", "shard2"))
    assert set(full) == {("baseline_cnn", 0), ("baseline_cnn", 1)}
    assert one and two and not set(one) & set(two)
    assert set(one) | set(two) == set(full)
    for part, label in ((one, "1/2"), (two, "2/2")):
        for pair, row in part.items():
            assert row["status"] == "ok" and row["shard"] == label
            # --deterministic: the same pair gives the same numbers, whichever runner ran it
            # and whatever ran before it in that process.
            for column in ACCURACY_COLUMNS:
                assert float(row[column]) == float(full[pair][column]), (pair, column)


def test_report_renders_both_shards_as_one_table(shards, tmp_path, capsys):
    """`catsdogs report SHARD1 SHARD2`, through the command's own entry point in this
    process (TensorFlow, which its augmentation figure needs, is already loaded here)."""
    from catsdogs.cli import main

    out = tmp_path / "report"
    assert main(["report", str(shards["shard1"].path), str(shards["shard2"].path),
                 "--format", "plain", "--out", str(out)]) == 0
    assert "baseline_cnn" in capsys.readouterr().out
    table = pd.read_csv(out / "table.csv")
    model1 = table[table["variant"] == "baseline_cnn"]
    assert len(model1) == 1, table.to_string()  # one row for the variant, not one per shard
    assert int(model1["n"].iloc[0]) == 2 and json.loads(model1["seeds"].iloc[0]) == [0, 1]


def test_xdist_workers_write_their_rows_into_one_result_set(started):
    process, results_dir = started["xdist"]
    _finish(process)
    result_set = _only_result_set(results_dir)  # the controller's; no worker made its own
    rows = result_set.runs()
    assert sorted(int(row["seed"]) for row in rows) == [0, 1]
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    assert sorted(int(row["seed"]) for row in result_set.epochs()) == [0, 1]


def test_xla_run_is_recorded_and_a_model_keras_cannot_compile_fails_honestly(started):
    """`catsdogs run --xla` in a fresh process (op determinism, which turns XLA off, is
    process-wide): model1 trains under XLA on CPU; model2, which Keras would quietly train
    without XLA, is a failed row that says why, not an "xla=true" run that was not."""
    process, results_dir = started["xla"]
    _finish(process, expected=1)  # 1: a run failed
    rows = _by_pair(_only_result_set(results_dir))
    model1, model2 = rows[("baseline_cnn", 0)], rows[("augmented_cnn", 0)]
    assert model1["status"] == "ok" and model1["xla"] == "true", model1["error"]
    assert model2["status"] == "failed" and model2["xla"] == "true"
    assert "without XLA" in model2["error"] and "random_rotation" in model2["error"]


def test_xla_with_deterministic_is_refused():
    from catsdogs.errors import UsageError
    from catsdogs.training.train import TrainConfig

    with pytest.raises(UsageError, match="--xla and --deterministic"):
        TrainConfig(xla=True, deterministic=True)


@pytest.mark.parametrize("raw, expected", [
    ({"mixed_precision": True}, {"mixed_precision": "true", "xla": "false"}),
    ({"strategy": "mirrored"}, {"strategy": "mirrored", "replicas": "1"}),
], ids=["mixed-precision", "mirrored"])
def test_speed_options_train_on_cpu_and_are_recorded(real_data_dir, tmp_path, raw, expected):
    """One run through the runner `catsdogs run` uses, its row read back from runs.csv."""
    result_set = _run_in_process({"data_dir": str(real_data_dir), **raw}, tmp_path)
    [row] = result_set.runs()
    assert row["status"] == "ok", row["error"]
    assert {key: row[key] for key in expected} == expected
    assert float(row["peak_rss_mb"]) > 0
    assert float(row["step_time_ms"]) > 0
    import tensorflow as tf
    from tensorflow import keras

    if not tf.config.list_physical_devices("GPU"):
        assert row["gpu_peak_mb"] == ""  # no GPU, no GPU memory figure (never a made-up 0)
    else:
        assert float(row["gpu_peak_mb"]) > 0
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run

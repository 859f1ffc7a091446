"""Result sets: new folder every session, provenance on every row, append-only."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from catsdogs.errors import ResultsError, UsageError
from catsdogs.resultset.schema import EPOCH_COLUMNS, RUN_COLUMNS, SCHEMA_VERSION
from catsdogs.resultset.store import ResultSet, result_set_name, software_label

ENV = {"host": "test host", "tf_version": "2.21.0", "device_label": "cpu"}
NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.timezone.utc)


def test_name_sorts_by_time_and_names_host_tf_and_device():
    assert result_set_name(NOW, "test host", software_label({"tf_version": "2.21.0"}),
                           "gpu-NVIDIA H100") == \
        "20261125T120000Z_test-host_tf2.21.0_gpu-NVIDIA-H100"
    jax = software_label({"backend": "jax", "jax_version": "0.10.2", "tf_version": ""})
    assert result_set_name(NOW, "h", jax, "cpu") == "20261125T120000Z_h_jax0.10.2_cpu"


def test_required_columns_are_in_the_schema():
    required = ("schema_version run_id variant seed epochs batch_size image_size dataset "
                "dataset_fingerprint pretrained deterministic train_accuracy val_accuracy "
                "test_accuracy overfit_gap train_loss val_loss test_loss step_time_ms "
                "step_time_ms_p90 images_per_sec first_epoch_s train_wall_s params_total "
                "params_trainable params_non_trainable tf_version keras_version "
                "python_version device git_commit status error").split()
    assert set(required) <= set(RUN_COLUMNS)
    assert set("schema_version run_id variant seed epoch loss accuracy val_loss val_accuracy "
               "epoch_s".split()) <= set(EPOCH_COLUMNS)


def test_a_second_session_in_the_same_second_gets_a_new_folder(tmp_path):
    first = ResultSet.create(tmp_path, ENV, now=NOW)
    second = ResultSet.create(tmp_path, ENV, now=NOW)
    assert first.path != second.path and second.name.endswith("-2")
    env = json.loads((first.path / "environment.json").read_text())
    assert env["schema_version"] == SCHEMA_VERSION and env["host"] == "test host"


def test_appending_keeps_earlier_rows_byte_for_byte(tmp_path):
    result_set = ResultSet.create(tmp_path, ENV, now=NOW)
    result_set.append_run({"run_id": "a", "variant": "baseline_cnn", "seed": 0,
                           "status": "ok", "pretrained": False, "n_test": 4,
                           "test_correct": 3, "test_accuracy": 0.75},
                          [{"run_id": "a", "variant": "baseline_cnn", "seed": 0, "epoch": 1}])
    before = (result_set.path / "runs.csv").read_bytes()
    result_set.append_run({"run_id": "b", "variant": "baseline_cnn", "seed": 1,
                           "status": "failed", "error": "x, \"quoted\"\nnewline"}, [])
    after = (result_set.path / "runs.csv").read_bytes()
    assert after.startswith(before)
    rows = list(csv.DictReader(open(result_set.path / "runs.csv")))
    assert [r["run_id"] for r in rows] == ["a", "b"]
    assert rows[0]["pretrained"] == "false" and rows[1]["error"] == "x, \"quoted\"\nnewline"
    assert all(r["schema_version"] == str(SCHEMA_VERSION) for r in rows)
    assert result_set.done_pairs() == {("baseline_cnn", 0), ("baseline_cnn", 1)}


def test_unknown_column_is_refused(tmp_path):
    result_set = ResultSet.create(tmp_path, ENV, now=NOW)
    with pytest.raises(ValueError, match="bogus"):
        result_set.append_run({"run_id": "a", "bogus": 1}, [])


def test_open_refuses_a_folder_that_is_not_a_result_set(tmp_path):
    with pytest.raises(ResultsError, match="is not a result set"):
        ResultSet.open(tmp_path)


def test_unwritable_results_dir_is_a_usage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="--results-dir: cannot write"):
        ResultSet.create(blocker / "results", ENV)

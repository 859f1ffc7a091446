"""The models, runs and the bench on every Keras backend, each in its own interpreter (issue 21).

Per backend, in a subprocess with KERAS_BACKEND set (tests/backend_envs.py says which
interpreter): the four models' parameter counts are the post's; a run on jax or torch
needs no TensorFlow (it is hidden where installed) and its rows, epochs and progress say
what ran; --resume adds only the missing pair; a NaN loss fails its run and the session
goes on; pytest-benchmark times one round per epoch after the first. Tiny data: the
synthetic set with --limit, or ten real images per class.

JAX compiles every model it trains (tens of seconds each on this project's 2-core VM), so
the checks that are the same code on every backend (NaN guard, resume, bench rounds) run
on jax only with `pytest -m backend_extra`; .ci/run leaves them out (README "Keras
backends": CI's time budget). TensorFlow's own are in the older tests (test_training_faults,
test_interruption, test_cli).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from backend_envs import (
    BACKENDS,
    backend_env,
    has_tensorflow,
    hide_tensorflow,
    require_backend,
    run_python,
)
from conftest import copy_real_subset
from test_models import EXPECTED_PARAMS

pytestmark = pytest.mark.slow

OTHER_BACKENDS = BACKENDS[1:]
#: torch in every run; jax (the same code, compiled slowly) only with -m backend_extra.
CHEAP_FIRST = (pytest.param("jax", marks=pytest.mark.backend_extra), "torch")
#: model4 with --weights none: the whole base trains, BatchNorm's moving statistics do not.
SCRATCH_MODEL4 = (2_445_858, 2_411_746, 34_112)


@pytest.fixture(scope="module")
def hidden(tmp_path_factory) -> Path:
    return hide_tensorflow(tmp_path_factory.mktemp("no_tensorflow"))


def _env(backend: str, python: str, hidden: Path) -> dict[str, str]:
    """A backend's environment; on jax and torch with TensorFlow hidden where installed."""
    hide = backend != "tensorflow" and has_tensorflow(python)
    return backend_env(backend, hidden=hidden if hide else None)


def _probe(done) -> dict:
    assert done.returncode == 0, done.stderr[-4000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    return json.loads(line[len("PROBE "):])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _triple(counts: dict[str, int]) -> tuple[int, int, int]:
    return counts["params_total"], counts["params_trainable"], counts["params_non_trainable"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_four_models_have_the_posts_parameter_counts_on_every_backend(backend, tmp_path,
                                                                          hidden):
    python = require_backend(backend)
    result = _probe(run_python(python, ["tests/backend_probe.py", "params", str(tmp_path)],
                               _env(backend, python, hidden)))
    assert result["backend"] == backend
    counts = result["counts"]
    for name in ("baseline_cnn", "augmented_cnn", "preprocessed_cnn"):
        assert _triple(counts[name]) == EXPECTED_PARAMS[name], (backend, name)
    assert _triple(counts["transfer_mobilenetv2"]) == SCRATCH_MODEL4
    assert _triple(counts["transfer_mobilenetv2 (weights file)"]) == \
        EXPECTED_PARAMS["transfer_mobilenetv2"]


def _run(python: str, environ: dict[str, str], *args: str):
    return run_python(python, ["-m", "catsdogs", "run", *args], environ)


def _common(backend: str, results: Path) -> tuple[str, ...]:
    return ("--backend", backend, "--synthetic", "--limit", "8", "--epochs", "2",
            "--results-dir", str(results))


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_run_without_tensorflow_records_its_backend(backend, tmp_path, hidden):
    """The acceptance run of issue 21 (with 2 epochs, so step times leave out epoch 1):
    rows, epochs and progress on the backend."""
    python = require_backend(backend)
    results = tmp_path / "results"
    done = _run(python, _env(backend, python, hidden), *_common(backend, results),
                "--variants", "model1,model2,model3", "--seeds", "0")
    assert done.returncode == 0, done.stderr[-4000:]
    (result_set,) = (results / "runs").iterdir()
    assert f"_{backend}" in result_set.name and "_tf" not in result_set.name
    rows = _rows(result_set / "runs.csv")
    assert [(r["variant"], r["status"]) for r in rows] == [
        ("baseline_cnn", "ok"), ("augmented_cnn", "ok"), ("preprocessed_cnn", "ok")]
    for row in rows:
        assert row["backend"] == backend and row[f"{backend}_version"] and not row["tf_version"]
        assert row["decoder"].startswith("simplejpeg") and row["dataset"] == "synthetic"
        assert float(row["step_time_ms"]) > 0 and row["keras_version"]
        assert _triple({key: int(row[key]) for key in ("params_total", "params_trainable",
                                                       "params_non_trainable")}) == \
            EXPECTED_PARAMS[row["variant"]]
    epochs = _rows(result_set / "epochs.csv")
    assert [(e["variant"], e["epoch"]) for e in epochs] == [
        (v, str(i)) for v in ("baseline_cnn", "augmented_cnn", "preprocessed_cnn")
        for i in (1, 2)]
    assert all(float(e["step_ms_median"]) > 0 and int(e["steps"]) >= 1 for e in epochs)
    assert "epoch   2/2" in done.stderr and "run 3/3 preprocessed_cnn" in done.stderr
    environment = json.loads((result_set / "environment.json").read_text())
    assert environment["backend"] == backend and environment["options"]["backend"] == backend


@pytest.mark.parametrize("backend", CHEAP_FIRST)
def test_resume_adds_only_the_missing_pair_on_the_backend(backend, tmp_path, hidden):
    python = require_backend(backend)
    environ, results = _env(backend, python, hidden), tmp_path / "results"
    first = _run(python, environ, *_common(backend, results), "--variants", "model1",
                 "--seeds", "0")
    assert first.returncode == 0, first.stderr[-4000:]
    (result_set,) = (results / "runs").iterdir()
    before = (result_set / "runs.csv").read_bytes()
    again = _run(python, environ, *_common(backend, results), "--variants", "model1",
                 "--seeds", "0,1", "--resume", str(result_set))
    assert again.returncode == 0, again.stderr[-4000:]
    assert (result_set / "runs.csv").read_bytes().startswith(before)
    assert [(r["seed"], r["status"], r["backend"]) for r in _rows(result_set / "runs.csv")] \
        == [("0", "ok", backend), ("1", "ok", backend)]


@pytest.mark.parametrize("backend", CHEAP_FIRST)
def test_a_nan_loss_fails_its_run_and_the_session_goes_on(backend, tmp_path, hidden,
                                                          real_data_dir):
    python = require_backend(backend)
    data = copy_real_subset(real_data_dir, tmp_path / "cats_and_dogs_filtered",
                            {"train": 10, "validation": 10})
    result = _probe(run_python(python, ["tests/backend_probe.py", "nan", str(data),
                                        str(tmp_path / "results")],
                               _env(backend, python, hidden)))
    rows = result["rows"]
    assert [(r["seed"], r["status"], r["backend"]) for r in rows] == [
        (0, "failed", backend), (1, "ok", backend)]
    assert rows[0]["error"].startswith("TrainingDiverged: loss became "), rows[0]["error"]


@pytest.mark.parametrize("backend", CHEAP_FIRST)
def test_the_bench_times_one_round_per_epoch_after_the_first(backend, tmp_path, hidden):
    python = require_backend(backend)
    results, report = tmp_path / "results", tmp_path / "bench.json"
    done = run_python(python, ["-m", "pytest", "bench", "--benchmark-only", "-q",
                               "-p", "no:cacheprovider", "--backend", backend, "--synthetic",
                               "--limit", "8", "--epochs", "2", "--variants", "model1",
                               "--seeds", "0", "--results-dir", str(results),
                               "--benchmark-json", str(report)],
                      _env(backend, python, hidden))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(report.read_text())
    (bench,) = document["benchmarks"]
    assert bench["stats"]["rounds"] == 1  # epoch 1 is the warm-up round
    assert document["machine_info"]["catsdogs"]["backend"] == backend
    (row,) = _rows(next((results / "runs").iterdir()) / "runs.csv")
    assert row["run_id"] == bench["extra_info"]["run_id"] and row["backend"] == backend


@pytest.mark.parametrize("backend", CHEAP_FIRST)
def test_a_report_with_pictures_needs_no_tensorflow(backend, tmp_path, hidden):
    """The augmentation preview runs Keras' random layers: without TensorFlow it runs on
    the backend that is installed, and its title says which."""
    from resultsets import write_result_set

    from catsdogs.dataset.synthetic import make_synthetic

    python = require_backend(backend)
    data = make_synthetic(tmp_path / "data", train_per_class=3, validation_per_class=1,
                          size=(32, 32))
    result_set = write_result_set(tmp_path / "results", variants=["baseline_cnn"], seeds=[0],
                                  data_dir=str(data), dataset="synthetic")
    environ = dict(_env(backend, python, hidden))
    environ.pop("KERAS_BACKEND")  # report has no --backend: it must find one itself
    done = run_python(python, ["-m", "catsdogs", "report", str(result_set), "--out",
                               str(tmp_path / "out")], environ)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "augmentation_preview.png").is_file()


@pytest.mark.backend_extra
def test_ab_puts_tensorflow_against_another_backend(tmp_path, hidden):
    """`catsdogs ab` with the real worker on both sides: the base on TensorFlow, the
    candidate on torch through its own CATSDOGS_BACKEND (as tox:torch sets it); each
    side's record names its backend, and the same model ran on the same data."""
    base, candidate = require_backend("tensorflow"), require_backend("torch")
    environ = backend_env("tensorflow")
    environ.pop("KERAS_BACKEND")
    done = run_python(base, ["-m", "catsdogs", "ab", base, candidate, "--candidate-env",
                             "CATSDOGS_BACKEND=torch", "--synthetic", "--limit", "4",
                             "--variants", "model1", "--budget", "0.3", "--burst-steps", "5",
                             "--json", str(tmp_path / "ab.json"),
                             "--results-dir", str(tmp_path / "results")], environ)
    assert done.returncode in (0, 1, 3), done.stderr[-3000:]
    document = json.loads((tmp_path / "ab.json").read_text())
    record = json.loads(Path(document["record"]).read_text())
    assert record["provenance"]["base"]["backend"] == "tensorflow"
    assert record["provenance"]["candidate"]["backend"] == "torch"
    assert record["provenance"]["candidate"]["torch_version"]
    assert "torch 2." in done.stdout and "TF 2." in done.stdout

"""--backend and what it changes, in this process (issue 21): the option and its refusals,
the schema's backend block, the TF-free batches, and compare/trend across backends.

Everything here runs where TensorFlow is installed; what needs a process of its own
backend (the models, a run, the bench) is in tests/test_backend_runs.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from resultsets import copy_result_set, write_result_set

from catsdogs.backend import apply_backend, parse_backend, recorded_backend
from catsdogs.errors import UsageError
from catsdogs.options import resolve
from catsdogs.resultset.load import load_result_sets, read_set
from catsdogs.resultset.store import ResultSet, software_label

ROOT = Path(__file__).resolve().parents[1]
#: A committed schema-2 set (TF 2.21.0, before --backend existed; read, never written).
SCHEMA2_SET = ROOT / "results" / "runs" / "20261127T053949Z_vm_tf2.21.0_cpu"
JAX = {"backend": "jax", "jax_version": "0.10.2", "jaxlib_version": "0.10.2",
       "tf_version": "", "decoder": "simplejpeg 1.9.0 (test data)"}


# ---------------------------------------------------------------- the option


def test_backend_defaults_to_tensorflow_and_reads_its_variable():
    assert resolve({}, environ={}).backend == "tensorflow"
    assert resolve({"backend": "JAX"}, environ={}).backend == "jax"
    assert resolve({}, environ={"CATSDOGS_BACKEND": "torch"}).backend == "torch"
    assert resolve({"backend": "jax"}, environ={"CATSDOGS_BACKEND": "torch"}).backend == "jax"


@pytest.mark.parametrize("raw, environ, fragments", [
    ({"backend": "mxnet"}, {}, ["--backend: expected one of tensorflow, jax, torch",
                                "'mxnet'"]),
    ({}, {"CATSDOGS_BACKEND": "tf"}, ["CATSDOGS_BACKEND: expected one of", "'tf'"]),
    ({"backend": "jax", "xla": True}, {}, ["--xla and --backend jax", "TensorFlow only",
                                           "jax compiles every training step with XLA"]),
    ({"backend": "torch", "strategy": "mirrored"}, {},
     ["--strategy mirrored and --backend torch", "MirroredStrategy", "TensorFlow only"]),
    ({"xla": True}, {"CATSDOGS_BACKEND": "torch"}, ["--xla and CATSDOGS_BACKEND torch"]),
], ids=["unknown", "unknown in the variable", "xla on jax", "mirrored on torch",
        "xla and the variable"])
def test_a_bad_backend_or_a_tensorflow_only_option_elsewhere_is_one_line(raw, environ,
                                                                         fragments):
    with pytest.raises(UsageError) as caught:
        resolve(raw, environ=environ)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_backend_that_is_not_installed_is_refused_before_anything_loads():
    """`python -S`: no site-packages, so neither jax nor torch nor TensorFlow is there."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); "
              "from catsdogs.backend import apply_backend; from catsdogs.errors import UsageError\n"
              "for name in ('jax', 'torch', 'tensorflow'):\n"
              "    try: apply_backend(name)\n"
              "    except UsageError as exc: print(exc)\n"
              "print('keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-S", "-c", script, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 4, done.stderr[-2000:]
    for line, name in zip(lines, ("jax", "torch", "tensorflow")):
        assert line.startswith(f"--backend {name}: the {name} package is not installed in ")
        assert "expected it installed (pip install" in line
    assert lines[3] == "False"


def _installed_other_backend() -> str:
    import importlib.util

    for name in ("jax", "torch"):
        if importlib.util.find_spec(name) is not None:
            return name
    pytest.skip("neither jax nor torch is installed here")


def test_keras_loaded_on_one_backend_refuses_another():
    import keras  # this process trains on TensorFlow

    other = _installed_other_backend()
    assert keras.config.backend() == "tensorflow"
    apply_backend("tensorflow")  # the one it has: fine
    with pytest.raises(UsageError, match=rf"--backend {other}: Keras is already loaded in this "
                                         r"process on tensorflow; expected a new process"):
        apply_backend(other)


def test_keras_2_runs_on_tensorflow_only(monkeypatch):
    other = _installed_other_backend()
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    with pytest.raises(UsageError, match=rf"--backend {other}: TF_USE_LEGACY_KERAS is set"):
        apply_backend(other)
    assert parse_backend(" Torch ") == "torch"


# ---------------------------------------------------------------- the result set


def test_sets_from_before_backends_read_as_tensorflow_with_the_block_empty():
    runs, _, (environment,) = load_result_sets([SCHEMA2_SET])
    assert environment["schema_version"] == 2
    assert set(runs["backend"]) == {"tensorflow"}  # a fact: nothing else could run then
    for column in ("jax_version", "jaxlib_version", "torch_version", "decoder"):
        assert runs[column].isna().all(), column
    assert recorded_backend(None) == recorded_backend("") == "tensorflow"


def test_resume_into_a_schema_2_set_writes_schema_2_rows(tmp_path):
    import shutil

    copy = Path(shutil.copytree(SCHEMA2_SET, tmp_path / SCHEMA2_SET.name))
    before = (copy / "runs.csv").read_bytes()
    loaded = read_set(copy)
    row = {key: value for key, value in loaded.runs[0].items()
           if key not in ("schema_version", "result_set", "row_sha256")}
    row.update(run_id="again", seed=9, backend="tensorflow", decoder="tf (dropped)",
               step_time_ms=None, step_time_ms_p90=None)  # no epochs given for it
    ResultSet.open(copy).append_run(row, [])
    after = read_set(copy)
    assert after.schema_version == 2 and (copy / "runs.csv").read_bytes().startswith(before)
    assert after.runs[-1]["seed"] == 9 and after.runs[-1]["decoder"] is None


def test_resume_with_another_backend_is_refused(tmp_path):
    from catsdogs.training.machine import machine_facts
    from catsdogs.training.runner import check_resume

    source = write_result_set(tmp_path / "a", variants=["baseline_cnn"], seeds=[0],
                              machine=machine_facts())  # this machine: only the backend differs
    environment = json.loads((source / "environment.json").read_text())
    options = resolve({"resume": str(source), "backend": "jax", "epochs": "5"}, environ={})
    info = SimpleNamespace(fingerprint=environment["dataset_fingerprint"])
    with pytest.raises(UsageError, match=r"it was run with backend='tensorflow', this session "
                                         r"has 'jax'; expected the same"):
        check_resume(options, environment["dataset"], info)
    check_resume(resolve({"resume": str(source), "epochs": "5"}, environ={}),
                 environment["dataset"], info)  # the same backend: accepted


def test_a_set_on_another_backend_is_named_and_described_by_it(tmp_path):
    from catsdogs.resultset.describe import provenance_items, scope_line

    base = write_result_set(tmp_path / "a", variants=["baseline_cnn"], seeds=[0, 1])
    jax_set = copy_result_set(base, tmp_path / "b", columns=JAX)
    assert "_jax0.10.2_" in jax_set.name and "_tf" not in jax_set.name
    assert software_label({"backend": "torch", "torch_version": "2.13.0+cpu"}) == \
        "torch2.13.0+cpu"
    assert software_label({"tf_version": "2.21.0"}) == "tf2.21.0"  # as before --backend
    runs, _, environments = load_result_sets([jax_set])
    items = dict(provenance_items(runs, environments))
    assert items["Keras backend"] == "JAX 0.10.2 (jaxlib 0.10.2)"
    assert items["TensorFlow"] == "not used"
    assert "Keras 3.15.1 on JAX 0.10.2 (jaxlib 0.10.2)" in scope_line(runs)
    tf_runs, _, _ = load_result_sets([base])
    assert "TF 2.21.0, Keras 3.15.1" in scope_line(tf_runs)
    assert "Keras backend" not in dict(provenance_items(tf_runs, []))


# ---------------------------------------------------------------- compare and trend


def test_compare_across_backends_gives_statistics_but_no_identity(tmp_path):
    """The very same numbers on both sides: on one backend that is `identical`; across
    backends it proves nothing, so identity says not comparable and the tests decide."""
    from catsdogs.verdicts import compare, output

    base = write_result_set(tmp_path / "a", variants=["baseline_cnn"], seeds=[0, 1, 2])
    same = copy_result_set(base, tmp_path / "b")
    jax_set = copy_result_set(base, tmp_path / "c", columns=JAX)
    within = compare.compare([base], [same])
    assert within.results[0].identity.status == "identical"
    across = compare.compare([base], [jax_set])
    (result,) = across.results
    assert result.identity.status == "not comparable"
    assert result.identity.backends == ("tensorflow", "jax")
    accuracy = next(m for m in result.metrics if m.metric == "test_accuracy")
    assert accuracy.verdict != "identical" and accuracy.difference is not None
    text = output.compare_text(across, "plain")
    assert "not comparable across Keras backends (tensorflow vs jax)" in text
    assert "statistics only" in text
    assert "note: backend differs (base tensorflow, candidate jax)" in text
    assert "(jax 0.10.2, Keras 3.15.1, cpu, machine " in text
    record = output.compare_json(across)["verdicts"][0]
    assert record["identity"]["status"] == "not comparable"
    assert record["candidate"]["backends"] == ["jax"]


def test_trend_puts_each_backend_after_tensorflow_and_says_so(tmp_path):
    from catsdogs.verdicts import output, trend

    old = write_result_set(tmp_path / "a", variants=["baseline_cnn"], seeds=[0, 1, 2],
                           tf_version="2.20.0")
    new = copy_result_set(old, tmp_path / "b", tf_version="2.21.0")
    torch_set = copy_result_set(old, tmp_path / "c", columns={
        "backend": "torch", "torch_version": "2.13.0+cpu", "tf_version": ""})
    jax_set = copy_result_set(old, tmp_path / "d", columns=JAX)
    built = trend.build_trend([torch_set, jax_set, new, old])
    assert [r.version for r in built.releases] == ["2.20.0", "2.21.0", "jax 0.10.2",
                                                   "torch 2.13.0+cpu"]
    identities = [result.identity.status for step in built.steps for result in step.results]
    assert identities == ["identical", "not comparable", "not comparable"]
    text = output.trend_text(built, "plain")
    assert "TF 2.21.0" in text and "jax 0.10.2" in text
    assert "Keras backends differ between releases" in text
    tf_only = output.trend_text(trend.build_trend([old, new]), "plain")
    assert "Keras backends differ" not in tf_only and "release" not in tf_only.split("\n")[2]


# ---------------------------------------------------------------- batches without tf.data


def _passes(dataset, count: int) -> list[np.ndarray]:
    return [np.concatenate([labels for _, labels in dataset]) for _ in range(count)]


def test_array_batches_reshuffle_every_pass_in_an_order_the_seed_fixes():
    from catsdogs.dataset.batches import array_batches

    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1)
    labels = list(range(10))
    one = array_batches(images, labels, batch_size=4, shuffle_seed=7)
    two = array_batches(images, labels, batch_size=4, shuffle_seed=7)
    other = array_batches(images, labels, batch_size=4, shuffle_seed=8)
    first, second = _passes(one, 3), _passes(two, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))  # same seed, same orders
    assert all(sorted(order) == labels for order in first)  # each pass: every image once
    assert not np.array_equal(first[0], first[1])  # reshuffled between passes
    assert not np.array_equal(first[0], _passes(other, 1)[0])
    assert len(one) == 3 and [len(b) for _, b in one] == [4, 4, 2]  # the last batch short
    images_out, labels_out = one[0]
    assert images_out.dtype == np.uint8 and labels_out.dtype == np.int32
    assert np.array_equal(images_out[:, 0, 0, 0], labels_out)  # images follow their labels
    fixed = array_batches(images, labels, batch_size=4, shuffle_seed=None)
    assert all(list(order) == labels for order in _passes(fixed, 2))
    assert len(one.take(2)) == 2
    endless = one.repeat()
    assert endless.num_batches is None and one.num_batches == 3
    sequence = np.concatenate([endless[i][1] for i in range(6)])  # two passes, in order
    again = array_batches(images, labels, batch_size=4, shuffle_seed=7)
    assert np.array_equal(sequence, np.concatenate(_passes(again, 2)))

"""scripts/gpu_backends.sh and what it carries, tried on the CPU (issue 21, item 6).

The derived copy of the data is labelled and fingerprinted as its own; the fact checker
refuses rows that are not what a GPU run must record; and the whole script, prepared
here (wheels from PyPI: `pytest -m network`) and run with --expect cpu and a tiny
--epochs/--limit, installs from its carry folder, trains on jax and torch without
TensorFlow and passes its own check. The real run is on a GPU machine (README "Keras
backends" gives the command); nothing here claims a GPU figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from backend_envs import ROOT, backend_python, hide_tensorflow
from conftest import copy_real_subset
from resultsets import copy_result_set, write_result_set

from catsdogs.dataset import scan
from catsdogs.dataset.derived import make_derived
from catsdogs.errors import UsageError

SCRIPT = ROOT / "scripts" / "gpu_backends.sh"
CHECKER = ROOT / "scripts" / "check_gpu_sets.py"


@pytest.fixture(scope="module")
def small(tmp_path_factory, real_data_dir) -> Path:
    return copy_real_subset(real_data_dir, tmp_path_factory.mktemp("small") / "data",
                            {"train": 10, "validation": 10})


def test_the_derived_copy_is_labelled_and_fingerprinted_as_its_own(small, tmp_path):
    from catsdogs.dataset.decode_without_tf import decode_files

    copy = make_derived(small, tmp_path / "derived")
    source, derived = scan.scan_dataset(small), scan.scan_dataset(copy)
    assert scan.dataset_kind(copy) == "derived" and scan.dataset_kind(small) == "real"
    assert sorted(derived.image_paths()) == sorted(source.image_paths())  # same names
    assert derived.fingerprint != source.fingerprint and not derived.fingerprint_known
    marker = json.loads((copy / scan.DERIVED_MARKER).read_text())
    assert marker["source_fingerprint"] == source.fingerprint and marker["images"] == 40
    assert "NOT the official dataset" in marker["note"] and "quality 90" in marker["how"]
    assert "DERIVED" in scan.describe(derived)
    images, _ = decode_files(copy, ["train/cats/cat.0.jpg"])
    original, _ = decode_files(small, ["train/cats/cat.0.jpg"])
    delta = abs(images.astype(int) - original.astype(int))
    assert images.shape == (1, 160, 160, 3) and 0 < delta.mean() < 3  # one lossy encoding
    with pytest.raises(UsageError, match="already exists"):
        make_derived(small, copy)


def _checked(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECKER), *args], capture_output=True,
                          text=True, timeout=60)


def test_the_checker_refuses_a_set_that_is_not_a_gpu_run_on_derived_data(tmp_path):
    base = write_result_set(tmp_path / "a", variants=["baseline_cnn"], seeds=[0])
    jax_set = copy_result_set(base, tmp_path / "b", columns={
        "backend": "jax", "jax_version": "0.10.2", "tf_version": "", "decoder": "simplejpeg"})
    done = _checked("--expect", "gpu", "--backends", "jax,torch", str(jax_set))
    assert done.returncode == 1
    for fragment in ("device 'cpu', expected gpu", "gpu_name empty", "cuda_version empty",
                     "expected the derived copy", "MISSING: no run on torch",
                     "SOME FACTS ARE WRONG"):
        assert fragment in done.stdout, (fragment, done.stdout)
    tf_set = _checked("--expect", "cpu", "--backends", "jax", str(base))
    assert "backend 'tensorflow' without its version" in tf_set.stdout


def _interpreter_with_both() -> str:
    """One interpreter with jax and torch (as the GPU image has both)."""
    jax, torch = backend_python("jax"), backend_python("torch")
    if not jax or jax != torch:
        pytest.skip("no single Python with both jax and torch (CATSDOGS_TEST_JAX_PYTHON and "
                    "CATSDOGS_TEST_TORCH_PYTHON name one, or install both here)")
    return jax


@pytest.mark.network
@pytest.mark.slow
def test_the_script_prepares_runs_and_checks_on_the_cpu(small, tmp_path):
    python = _interpreter_with_both()
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    carry, out = tmp_path / "carry", tmp_path / "out"
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("CATSDOGS_")}  # pip's own settings stay
    environ.update(PYTHON=python, PYTHONPATH=str(hide_tensorflow(tmp_path / "hidden")))
    prepared = subprocess.run(["bash", str(SCRIPT), "prepare", "--carry", str(carry),
                               "--python-version", version, "--source", str(small)],
                              capture_output=True, text=True, timeout=900,
                              env=dict(environ, PYTHON=sys.executable))  # here: everything
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    wheels = sorted(path.name.split("-")[0] for path in (carry / "wheels").glob("*.whl"))
    assert wheels == ["catsdogs_bench", "keras", "namex", "optree", "simplejpeg"]
    assert scan.dataset_kind(carry / "data") == "derived" and (carry / "COMMIT").read_text()
    done = subprocess.run(["bash", str(SCRIPT), "run", "--carry", str(carry), "--out", str(out),
                           "--expect", "cpu", "--epochs", "1", "--limit", "4",
                           "--variants", "model1"],
                          capture_output=True, text=True, env=environ, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "tensorflow: not installed" in done.stdout  # hidden, as on the GPU machine
    check = (out / "check.txt").read_text()
    assert "all recorded facts as expected" in check and check.count(": ok") == 2
    with tarfile.open(out / "gpu_results.tgz") as archive:
        names = archive.getnames()
    sets = {name.split("/")[2] for name in names if name.count("/") >= 3}
    assert len(sets) == 2 and any("_jax" in s for s in sets) and any("_torch" in s for s in sets)

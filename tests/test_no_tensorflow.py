"""Commands that only read result sets never import TensorFlow.

Why: `report`, `compare` and `trend` read CSVs; importing TensorFlow would cost seconds
and tie the reading of old results to a working TF install. Each command runs in a fresh
interpreter on the committed fixture set and the test asks `sys.modules` afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "20261125T232135Z_vm_tf2.21.0_cpu"

#: Runs the CLI in-process, then prints whether TensorFlow (or Keras) got imported.
_WRAPPER = """
import sys
from catsdogs.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("LOADED:" + ",".join(loaded))
sys.exit(code)
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def result_set(tmp_path) -> Path:
    """A copy of the committed set whose recorded dataset folder does not exist, so the
    answer is the same on every machine (report draws sample figures from that folder
    when it exists)."""
    copy = tmp_path / FIXTURE.name
    shutil.copytree(FIXTURE, copy)
    env_path = copy / "environment.json"
    environment = json.loads(env_path.read_text())
    environment["data_dir"] = str(tmp_path / "no-such-dataset")
    env_path.write_text(json.dumps(environment, indent=2))
    return copy


@pytest.mark.parametrize("command", [
    pytest.param(lambda s, out: ["report", str(s), "--out", str(out)], id="report"),
    pytest.param(lambda s, out: ["compare", str(s), str(s)], id="compare"),
    pytest.param(lambda s, out: ["trend", str(s), "--out", str(out)], id="trend"),
])
def test_reading_command_does_not_import_tensorflow(command, result_set, tmp_path):
    done = _run(command(result_set, tmp_path / "out"))
    assert "LOADED:" in done.stdout, done.stderr[-2000:]
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert done.stdout.rsplit("LOADED:", 1)[1].strip() == "", (
        "imported " + done.stdout.rsplit("LOADED:", 1)[1].strip())


def test_report_with_a_dataset_but_no_samples_does_not_import_tensorflow(result_set, tmp_path):
    """Only the dataset pictures need TensorFlow (the augmentation preview runs Keras'
    random layers); with --no-samples a report reads CSVs alone, dataset or not."""
    from catsdogs.dataset.synthetic import make_synthetic

    data = make_synthetic(tmp_path / "data", train_per_class=3, validation_per_class=1,
                          size=(32, 32))
    done = _run(["report", str(result_set), "--out", str(tmp_path / "out"),
                 "--data-dir", str(data), "--no-samples"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rsplit("LOADED:", 1)[1].strip() == ""

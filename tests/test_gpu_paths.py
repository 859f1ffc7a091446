"""The code paths that only a GPU run takes, exercised on a machine without a GPU.

- `--strategy mirrored` with two replicas: the CPU is split into two logical devices
  (tf.config.set_logical_device_configuration, which must happen before TensorFlow
  initialises, so in a subprocess) and `catsdogs run` trains on both.
- The GPU each `pytest bench -n N` worker takes (catsdogs.training.devices), with a stand-in
  `nvidia-smi` on PATH.
- `--mixed-precision`: float16 compute, float32 logits, a loss-scaling optimizer.
- The GPU fields of a row and of the result-set name (provenance.gpu_facts, the function
  a GPU run calls), with the stand-in nvidia-smi answering for the driver.

What none of this covers: CUDA kernels, GPU memory (gpu_peak_mb is read from the GPU
allocator, which a CPU does not have), and speed. README "What has run on a real GPU".
"""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from catsdogs.training import devices, provenance

REPO = Path(__file__).resolve().parents[1]
GPU_NAME = "NVIDIA A100-SXM4-40GB"
DRIVER = "550.54.15"

# Answers the three questions catsdogs asks nvidia-smi, as a two-GPU machine would.
FAKE_NVIDIA_SMI = f"""#!/bin/sh
case "$*" in
  "-L") printf 'GPU 0: {GPU_NAME} (UUID: GPU-0a)\\nGPU 1: {GPU_NAME} (UUID: GPU-1b)\\n' ;;
  *query-gpu=name*) printf '{GPU_NAME}\\n{GPU_NAME}\\n' ;;
  *query-gpu=driver_version*) printf '{DRIVER}\\n{DRIVER}\\n' ;;
  *) echo "stand-in nvidia-smi: unexpected arguments: $*" >&2; exit 64 ;;
esac
"""
# What nvidia-smi prints on a machine whose driver is not loaded.
BROKEN_NVIDIA_SMI = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
exit 9
"""


def _on_path(monkeypatch, tmp_path: Path, script: str | None) -> None:
    """PATH holds only a folder with `script` as nvidia-smi (or no nvidia-smi at all)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if script is not None:
        exe = folder / "nvidia-smi"
        exe.write_text(script)
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(folder))


# ---------------------------------------------------------------- xdist device choice


def test_each_xdist_worker_gets_its_own_gpu_from_nvidia_smi(monkeypatch, tmp_path):
    _on_path(monkeypatch, tmp_path, FAKE_NVIDIA_SMI)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = devices.visible_gpus()
    assert gpus == ["0", "1"]
    # four workers on two GPUs: round robin, so no GPU gets two workers before each has one
    assert [devices.worker_gpu(gpus, f"gw{k}") for k in range(4)] == ["0", "1", "0", "1"]


def test_cuda_visible_devices_overrides_nvidia_smi(monkeypatch, tmp_path):
    """A runner that was handed GPUs 3 and 5 must not spread workers over the others."""
    _on_path(monkeypatch, tmp_path, FAKE_NVIDIA_SMI)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert devices.visible_gpus() == ["3", "5"]
    assert devices.worker_gpu(devices.visible_gpus(), "gw1") == "5"


@pytest.mark.parametrize("script, visible", [
    (None, None),  # no NVIDIA driver installed: no nvidia-smi
    (BROKEN_NVIDIA_SMI, None),  # installed, but the driver is not loaded
    (FAKE_NVIDIA_SMI, ""),  # CUDA_VISIBLE_DEVICES="" hides every GPU
], ids=["no-nvidia-smi", "nvidia-smi-fails", "empty-cuda-visible-devices"])
def test_without_usable_gpus_workers_keep_the_cpu(monkeypatch, tmp_path, script, visible):
    _on_path(monkeypatch, tmp_path, script)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert devices.visible_gpus() == []
    assert devices.worker_gpu([], "gw0") is None


# ---------------------------------------------------------------- GPU fields of a row


def test_gpu_facts_name_and_driver_come_from_nvidia_smi(monkeypatch, tmp_path):
    """TensorFlow sometimes gives no device name; nvidia-smi's is used then."""
    _on_path(monkeypatch, tmp_path, FAKE_NVIDIA_SMI)
    facts = provenance.gpu_facts(2, "")
    assert facts["device"] == "gpu" and facts["gpu_count"] == 2
    assert facts["gpu_name"] == GPU_NAME and facts["gpu_driver"] == DRIVER
    assert provenance.gpu_facts(1, "Tesla T4")["gpu_name"] == "Tesla T4"  # TF's name first
    assert provenance.device_label(facts) == "gpu-NVIDIA-A100-SXM4-40GB"


def test_gpu_facts_reach_the_row_and_the_result_set_name(monkeypatch, tmp_path,
                                                         real_data_dir):
    """The facts a GPU run collects, through the functions that put them in a row and
    name its result set (no training: the row's provenance part, as a failed run has)."""
    from catsdogs.options import resolve
    from catsdogs.resultset.store import ResultSet
    from catsdogs.training import runner

    _on_path(monkeypatch, tmp_path, FAKE_NVIDIA_SMI)
    options = resolve({"data_dir": str(real_data_dir), "limit": "10", "epochs": "1",
                       "variants": "model1", "seeds": "0",
                       "results_dir": str(tmp_path / "results")}, environ={})
    prepared = runner.prepare(options)
    prepared.environment.update(provenance.gpu_facts(2, ""))
    prepared.environment["device_label"] = provenance.device_label(prepared.environment)
    row = runner._base_row(prepared, "baseline_cnn", 0, None)
    assert (row["device"], row["gpu_name"]) == ("gpu", GPU_NAME)
    result_set = ResultSet.create(options.results_dir, prepared.environment)
    assert result_set.path.name.endswith("_gpu-NVIDIA-A100-SXM4-40GB"), result_set.path.name
    assert result_set.environment()["gpu_driver"] == DRIVER


def test_gpu_peak_memory_is_blank_not_zero_without_a_gpu():
    """gpu_peak_mb is read from TensorFlow's GPU allocator; with no GPU there is no
    figure, and the reset before training must not fail either."""
    import tensorflow as tf

    from catsdogs.training.train import _gpu_peak_mb

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: the number is checked by test_scale")
    assert _gpu_peak_mb(reset=True) is None and _gpu_peak_mb() is None


# ---------------------------------------------------------------- mixed precision


@pytest.mark.slow
def test_mixed_precision_computes_in_float16_with_float32_logits_and_loss_scaling(
        real_data_dir):
    """The model as `train_run` builds and fits it under --mixed-precision, looked at
    from inside fit (a callback sees the compiled model and its optimizer)."""
    from tensorflow import keras

    from catsdogs.dataset.pipeline import load_splits
    from catsdogs.training.train import TrainConfig, train_run

    seen: dict = {}

    class Look(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            model = self.model
            images, _ = next(iter(splits.test))
            seen["logits"] = model(images, training=False).dtype
            seen["optimizer"] = type(model.optimizer).__name__
            seen["scale"] = float(model.optimizer.scale_loss(1.0))
            conv = next(layer for layer in model.layers if "conv" in layer.name)
            seen["conv"] = (conv.compute_dtype, conv.variable_dtype)

    splits = load_splits(real_data_dir, seed=0, limit=10, batch_size=8)
    result = train_run("model1", splits, seed=0, extra_callbacks=(Look(),),
                       config=TrainConfig(epochs=1, batch_size=8, mixed_precision=True))
    assert seen["conv"] == ("float16", "float32")  # float16 maths, float32 weights
    assert seen["logits"] == "float32"  # the loss is computed in float32
    assert seen["optimizer"] == "LossScaleOptimizer"
    assert seen["scale"] > 1  # the loss really is scaled up before the float16 backward pass
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["test_loss"])
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards


# ---------------------------------------------------------------- mirrored, two replicas

_TWO_CPUS = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
from catsdogs.cli import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_mirrored_strategy_trains_two_replicas_on_two_logical_cpus(real_data_dir, tmp_path):
    """`catsdogs run --strategy mirrored` with two devices: two replicas in sync, and the
    global batch stays --batch-size (8 here: 20 training images make 3 steps, not the 2
    that a per-replica batch of 8 would give)."""
    from catsdogs.resultset.store import ResultSet

    env = {key: value for key, value in os.environ.items() if not key.startswith("CATSDOGS_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-c", _TWO_CPUS, "run", "--data-dir", str(real_data_dir),
         "--limit", "10", "--epochs", "1", "--batch-size", "8", "--variants", "model1",
         "--seeds", "0", "--strategy", "mirrored", "--results-dir", str(results)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [found] = (results / "runs").iterdir()
    result_set = ResultSet.open(found)
    [row] = result_set.runs()
    assert row["status"] == "ok", row["error"]
    assert (row["strategy"], row["replicas"]) == ("mirrored", "2")
    assert int(row["n_train"]) == 20
    [epoch] = result_set.epochs()
    assert int(epoch["steps"]) == math.ceil(20 / 8)
    assert math.isfinite(float(row["train_loss"]))

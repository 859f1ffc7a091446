"""Where a number came from: software versions, device, machine, host, commit.

Every result row and every pytest-benchmark machine_info carries these, so a pasted
figure can always be traced to the TensorFlow, Keras, CUDA/cuDNN, GPU, machine
(catsdogs.training.machine: CPU, its features, usable CPUs, settings; a fingerprint
in every row) and commit that produced it. Collecting facts never fails a run: unknown
facts are recorded as empty. The one refusal is deliberate: `check_expected_tf`, when
the TensorFlow imported is not the release the environment names (CATSDOGS_EXPECT_TF),
since every fact would then name the wrong release.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from catsdogs.backend import TENSORFLOW, active_backend
from catsdogs.errors import UsageError
from catsdogs.training import backend_provenance
from catsdogs.training.devices import nvidia_smi
from catsdogs.training.machine import machine_facts

EXPECT_TF_ENV = "CATSDOGS_EXPECT_TF"
COMMIT_ENV = "CATSDOGS_GIT_COMMIT"


def git_commit(start: Path | None = None) -> str:
    """The commit of the checkout we run from, '+dirty' when it has uncommitted changes.
    Outside a git checkout (a copy of the tree carried to a machine without git, as
    scripts/gpu_backends.sh does) the commit that copy was made from, when the copy says
    so in CATSDOGS_GIT_COMMIT; else ''."""
    cwd = start or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        if not commit:
            return os.environ.get(COMMIT_ENV, "").strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=10).stdout
        return commit + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):  # no git at all
        return os.environ.get(COMMIT_ENV, "").strip()


def _nvidia_smi(query: str) -> str:
    """One field from nvidia-smi for GPU 0, '' when there is no NVIDIA driver."""
    lines = nvidia_smi(f"--query-gpu={query}", "--format=csv,noheader").strip().splitlines()
    return lines[0].strip() if lines else ""


def keras_version(keras) -> str:
    """Keras 3 has `keras.__version__`; under TF_USE_LEGACY_KERAS=1 `tf.keras` is the
    tf_keras package, whose version lives on the package itself."""
    version = getattr(keras, "__version__", None)
    if version:
        return str(version)
    try:
        import tf_keras

        return "tf_keras " + str(tf_keras.__version__)
    except (ImportError, AttributeError):
        return ""


def software() -> dict[str, Any]:
    """TF/Keras/Python versions and the CUDA/cuDNN TensorFlow was built against; on JAX
    or PyTorch their versions instead (catsdogs.training.backend_provenance)."""
    backend = active_backend()
    if backend != TENSORFLOW:
        return backend_provenance.software(backend)
    import tensorflow as tf
    from tensorflow import keras

    build = {}
    try:
        build = dict(tf.sysconfig.get_build_info())
    except Exception:  # CPU builds and some TF versions lack fields; never fail a run here
        build = {}
    return {"tf_version": tf.__version__, "keras_version": keras_version(keras),
            "python_version": platform.python_version(),
            "cuda_version": str(build.get("cuda_version", "") or ""),
            "cudnn_version": str(build.get("cudnn_version", "") or ""),
            "backend": TENSORFLOW, "jax_version": "", "jaxlib_version": "", "torch_version": ""}


def device() -> dict[str, Any]:
    """What the models run on: 'gpu' with its name, count and driver, else 'cpu'."""
    backend = active_backend()
    if backend != TENSORFLOW:
        count, name = backend_provenance.gpus(backend)
        return gpu_facts(count, name) if count else _cpu_facts()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return _cpu_facts()
    name = ""
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
    except Exception:  # older TF or an unusual device
        name = ""
    return gpu_facts(len(gpus), name)


def _cpu_facts() -> dict[str, Any]:
    return {"device": "cpu", "gpu_name": "", "gpu_count": 0, "gpu_driver": "",
            "cpu": platform.processor() or platform.machine()}


def gpu_facts(count: int, tf_name: str) -> dict[str, Any]:
    """The device facts of a run on `count` GPUs: the name TensorFlow gives GPU 0, else
    nvidia-smi's, and the driver from nvidia-smi. Apart from `device` so the GPU branch
    runs (with a stand-in nvidia-smi) on machines where TensorFlow sees no GPU."""
    return {"device": "gpu", "gpu_name": tf_name or _nvidia_smi("name"), "gpu_count": count,
            "gpu_driver": _nvidia_smi("driver_version"),
            "cpu": platform.processor() or platform.machine()}


def device_label(facts: dict[str, Any]) -> str:
    """Short device name for result-set folder names: 'cpu' or e.g. 'gpu-NVIDIA-H100'."""
    if facts.get("device") != "gpu":
        return "cpu"
    return "gpu-" + (facts.get("gpu_name") or "unknown").replace(" ", "-")


def collect() -> dict[str, Any]:
    """All provenance facts for environment.json and every row."""
    facts: dict[str, Any] = {"host": socket.gethostname(), "platform": platform.platform(),
                             "git_commit": git_commit()}
    facts.update(software())
    facts.update(device())
    facts["device_label"] = device_label(facts)
    facts["machine"] = machine_facts()
    return facts


def release_mismatch(expected: str, imported: str) -> str | None:
    """Why `imported` (a TensorFlow __version__) is not the release `expected` names, or
    None when it is. `expected` is MAJOR.MINOR ("2.16": any 2.16.x) or a full version
    ("2.16.2"); a tox env names a release, not a patch, so MAJOR.MINOR is the usual form."""
    wanted = expected.strip()
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", wanted):
        return (f"{EXPECT_TF_ENV}: expected a release like 2.16 or 2.16.2, "
                f"got {expected!r}")
    fields = wanted.split(".")
    if imported.split(".")[:len(fields)] == fields:
        return None
    return (f"{EXPECT_TF_ENV}={wanted}: this environment imports TensorFlow {imported}, "
            f"expected {wanted}, the release it is named for (recreate it: tox -r -e ENV)")


def check_expected_tf(environ: Mapping[str, str] | None = None) -> None:
    """Refuse to start a run when the TensorFlow this process imports is not the release
    its environment names (CATSDOGS_EXPECT_TF, set by each tox release env). Without it a
    pip resolution that quietly upgraded TensorFlow would write a "tf216" result set that
    ran 2.21, and comparing releases would compare a release with itself. Unset: no check,
    and TensorFlow is not imported here."""
    environ = os.environ if environ is None else environ
    expected = environ.get(EXPECT_TF_ENV, "")
    if not expected.strip():
        return
    import tensorflow as tf

    problem = release_mismatch(expected, tf.__version__)
    if problem:
        raise UsageError(problem)


def main() -> int:
    """`python -m catsdogs.training.provenance`: the release check alone. tox runs it before each
    release env's commands, so an env holding the wrong TensorFlow stops there with one
    line and exit 2, whatever the command after it (pytest reports a refusal from inside
    a fixture as a test error with a traceback)."""
    try:
        check_expected_tf()
    except UsageError as exc:
        print(f"catsdogs: error: {exc}", file=sys.stderr)
        return exc.exit_code
    expected = os.environ.get(EXPECT_TF_ENV, "").strip()
    if expected:
        import tensorflow as tf

        print(f"catsdogs: TensorFlow {tf.__version__}, the release {EXPECT_TF_ENV}={expected} "
              f"names")
    return 0


if __name__ == "__main__":
    sys.exit(main())

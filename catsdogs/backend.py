"""Which Keras backend trains the models (--backend tensorflow|jax|torch), set before Keras loads.

Keras 3 runs one model definition on TensorFlow, JAX or PyTorch, and reads the choice
(`KERAS_BACKEND`) once, when it is first imported: `apply_backend` sets it before that
and refuses, in one line, a backend that is not installed or a process whose Keras is
already on another one. Everything else that differs between backends is here too, so
the rest of the package asks one question (`active_backend`) instead of importing
TensorFlow: the keras module itself, op determinism, device memory, out-of-memory errors.

This module imports nothing of the project but its errors, so the model registry can use
it without deepening the import stack.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from catsdogs.errors import UsageError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
TENSORFLOW = "tensorflow"
#: How each backend gets installed (pyproject's extras; README "Keras backends").
INSTALL_HINT = {
    "tensorflow": "pip install 'catsdogs-bench[tensorflow]'",
    "jax": "pip install 'catsdogs-bench[jax]'",
    "torch": "pip install torch, the CPU or CUDA wheel you want, then 'catsdogs-bench[torch]'",
}
#: The XLA flag that makes JAX's GPU kernels deterministic (--deterministic on jax).
JAX_DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


def parse_backend(text: str) -> str:
    """'tensorflow', 'jax' or 'torch' (any case); anything else quoted back."""
    value = str(text).strip().lower()
    if value not in BACKENDS:
        raise UsageError(f"--backend: expected one of {', '.join(BACKENDS)}, got {text!r}")
    return value


def _legacy_keras() -> bool:
    """TF_USE_LEGACY_KERAS=1 (tox env keras2): `tf.keras` is tf_keras, Keras 2, TF only."""
    return os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() in ("1", "true", "yes")


def _configured_backend() -> str:
    """The backend Keras will pick when it is imported: KERAS_BACKEND, else the
    `backend` of keras.json (in KERAS_HOME or ~/.keras), else TensorFlow, as Keras does."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend", TENSORFLOW))
    except (OSError, ValueError, AttributeError):
        return TENSORFLOW


def active_backend() -> str:
    """The backend this process's Keras runs on (or will, once imported)."""
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    if config is not None and hasattr(config, "backend"):
        return str(config.backend())
    return _configured_backend()


def uses_tensorflow() -> bool:
    """Whether the models run on TensorFlow (tf.data, tf.io and tf.distribute apply)."""
    return active_backend() == TENSORFLOW


def apply_backend(name: str, *, deterministic: bool = False) -> None:
    """Make `name` the backend of this process's Keras, before Keras is imported.

    Refused in one line (UsageError) when the backend's package is not installed, when
    Keras 2 (TF_USE_LEGACY_KERAS) is asked to run on another backend, or when Keras was
    already imported on another backend (Keras cannot switch; a new process can). With
    `deterministic` on JAX, XLA's deterministic GPU kernels are asked for here, because
    XLA reads its flags once, when JAX starts."""
    name = parse_backend(name)
    if importlib.util.find_spec(name) is None:
        others = [other for other in BACKENDS
                  if other != name and importlib.util.find_spec(other) is not None]
        instead = f", or --backend {' or '.join(others)} (installed here)" if others else ""
        raise UsageError(f"--backend {name}: the {name} package is not installed in "
                         f"{sys.prefix}; expected it installed ({INSTALL_HINT[name]}){instead}")
    if name != TENSORFLOW and _legacy_keras():
        raise UsageError(f"--backend {name}: TF_USE_LEGACY_KERAS is set (Keras 2, "
                         "TensorFlow only); expected it unset for Keras 3 on jax or torch")
    if "keras" in sys.modules and active_backend() != name:
        raise UsageError(f"--backend {name}: Keras is already loaded in this process on "
                         f"{active_backend()}; expected a new process (Keras reads its "
                         "backend once, when it is first imported)")
    os.environ["KERAS_BACKEND"] = name
    if name == "jax" and deterministic and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if JAX_DETERMINISTIC_FLAG not in flags.split():
            os.environ["XLA_FLAGS"] = (flags + " " + JAX_DETERMINISTIC_FLAG).strip()


def choose_installed_backend() -> str:
    """For commands that only draw with Keras (report's augmentation preview): the backend
    Keras is on or would pick, when installed, else the first installed of BACKENDS, made
    this process's. A machine without any is one line, not an ImportError."""
    if "keras" in sys.modules:
        return active_backend()
    wanted = _configured_backend()
    for name in sorted(BACKENDS, key=lambda name: name != wanted):  # Keras' choice first
        try:  # importing, not only finding: Keras imports it next anyway
            importlib.import_module(name)
        except ImportError:
            continue
        apply_backend(name)
        return name
    raise UsageError(f"Keras needs a backend and none of {', '.join(BACKENDS)} is "
                     f"installed in {sys.prefix}; expected one ({INSTALL_HINT['jax']})")


def keras_module():
    """The keras every module uses: Keras 3 (`import keras`, the same objects as
    `tf.keras` on TensorFlow), or tf_keras through `tf.keras` under TF_USE_LEGACY_KERAS."""
    if _legacy_keras():
        from tensorflow import keras

        return keras
    import keras

    return keras


def recorded_backend(value: Any) -> str:
    """A row's backend; blank means TensorFlow (sets written before --backend existed
    could run on nothing else)."""
    return TENSORFLOW if value is None or value != value or str(value) == "" else str(value)


# ---------------------------------------------------------------- what differs per backend


def make_deterministic(backend: str) -> None:
    """Deterministic kernels for --deterministic: TensorFlow's op determinism, PyTorch's
    deterministic algorithms (cuBLAS needs its workspace pinned before its first call),
    JAX's XLA flag (set by apply_backend, before JAX started)."""
    if backend == TENSORFLOW:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        import torch

        torch.use_deterministic_algorithms(True)


def gpu_peak_mb(backend: str, reset: bool = False) -> float | None:
    """Peak memory on the first GPU in MiB, for JAX and PyTorch (train.py reads
    TensorFlow's own); None without a GPU. PyTorch's peak is reset per run; JAX keeps
    no resettable peak, so its figure is the process's peak so far (results/README)."""
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        if reset:
            torch.cuda.reset_peak_memory_stats(0)
            return None
        return torch.cuda.max_memory_allocated(0) / 2**20
    if backend == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        if reset or not gpus:
            return None
        stats = gpus[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether a run failed for want of device memory, on any backend: TensorFlow's
    ResourceExhaustedError, PyTorch's OutOfMemoryError, XLA's RESOURCE_EXHAUSTED."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(exc, getattr(tf.errors, "ResourceExhaustedError", ())):
        return True
    text = str(exc)
    return (type(exc).__name__ == "OutOfMemoryError" or "RESOURCE_EXHAUSTED" in text
            or "CUDA out of memory" in text)

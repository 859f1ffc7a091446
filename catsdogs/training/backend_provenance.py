"""Provenance of a JAX or PyTorch run: versions, CUDA and cuDNN, and the GPUs the backend sees.

catsdogs.training.provenance asks TensorFlow these questions on TensorFlow; on the other
backends it asks here, so a run that never imported TensorFlow still records what it ran
on, and records no TensorFlow (tf_version stays empty: TensorFlow trained nothing). Like
every provenance fact, an unknown one is recorded as empty, never a failure.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any


def _version(distribution: str) -> str:
    """An installed distribution's version, '' when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def cudnn_text(version: int | None) -> str:
    """cuDNN's integer version as text: 91002 -> '9.10.2' (cuDNN 9 counts major x 10000),
    8902 -> '8.9.2' (cuDNN 8 and older, major x 1000); '' when unknown."""
    if not version:
        return ""
    major, rest = (version // 10000, version % 10000) if version >= 10000 \
        else (version // 1000, version % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def _jax_cuda() -> tuple[str, str]:
    """(CUDA, cuDNN) of jaxlib's CUDA plugin, '' each without one (a CPU jaxlib). The
    versions come from jaxlib's own (private) query, else the plugin's name says CUDA's
    major version (jax-cuda13-plugin)."""
    try:
        from jax._src.lib import cuda_versions  # present only with a CUDA plugin

        if cuda_versions is not None:
            runtime = cuda_versions.cuda_runtime_get_version()
            cudnn = cuda_versions.cudnn_get_version()
            return f"{runtime // 1000}.{runtime % 1000 // 10}", cudnn_text(cudnn)
    except (ImportError, AttributeError, RuntimeError):
        pass
    for major in (13, 12, 11):
        plugin = _version(f"jax-cuda{major}-plugin")
        if plugin:
            return f"{major} (jax-cuda{major}-plugin {plugin})", ""
    return "", ""


def software(backend: str) -> dict[str, Any]:
    """Keras, Python and the backend's versions (jax + jaxlib, or torch), with the CUDA
    and cuDNN it runs on."""
    import keras

    facts: dict[str, Any] = {"tf_version": "", "keras_version": str(keras.__version__),
                             "python_version": platform.python_version(), "backend": backend,
                             "jax_version": "", "jaxlib_version": "", "torch_version": "",
                             "cuda_version": "", "cudnn_version": ""}
    if backend == "jax":
        import jax
        import jaxlib

        facts.update(jax_version=jax.__version__, jaxlib_version=jaxlib.__version__)
        facts["cuda_version"], facts["cudnn_version"] = _jax_cuda()
    elif backend == "torch":
        import torch

        facts.update(torch_version=torch.__version__,
                     cuda_version=torch.version.cuda or "",
                     cudnn_version=cudnn_text(torch.backends.cudnn.version()
                                              if torch.backends.cudnn.is_available() else None))
    return facts


def gpus(backend: str) -> tuple[int, str]:
    """(how many GPUs the backend sees, the name of the first); (0, '') on a CPU."""
    if backend == "jax":
        import jax

        found = [device for device in jax.devices() if device.platform == "gpu"]
        return len(found), (getattr(found[0], "device_kind", "") if found else "")
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return 0, ""
        return torch.cuda.device_count(), torch.cuda.get_device_name(0)
    return 0, ""

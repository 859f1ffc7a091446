"""The machine's NVIDIA GPUs as nvidia-smi reports them, and which one each worker trains on.

`nvidia_smi` is the one place the package runs nvidia-smi (provenance asks it for the GPU
name and driver). Which GPU each pytest-xdist worker of `pytest bench -n N` uses is
decided without importing TensorFlow, so the xdist controller never claims GPU memory:
the GPUs come from CUDA_VISIBLE_DEVICES when it is set, else from `nvidia-smi -L`, and
worker gwK takes the K-th of them (round robin when there are more workers than GPUs).
Kept apart from bench/conftest.py so the choice can be tested with a stand-in nvidia-smi
on a machine without GPUs.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Mapping


def nvidia_smi(*args: str, timeout: float = 10) -> str:
    """nvidia-smi's output for `args`, '' when there is no nvidia-smi or it fails (no
    driver: "NVIDIA-SMI has failed because it couldn't communicate with the driver"),
    so callers treat "no NVIDIA GPU" one way."""
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout if out.returncode == 0 else ""


def listed_gpus(timeout: float = 10) -> list[str]:
    """Indices of the GPUs `nvidia-smi -L` lists ('GPU 0: ...' lines), [] when there is no
    nvidia-smi or it fails (no driver): then the workers run on the CPU."""
    out = nvidia_smi("-L", timeout=timeout)
    return [match.group(1) for match in re.finditer(r"^GPU (\d+):", out, re.MULTILINE)]


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this session may use: CUDA_VISIBLE_DEVICES if set (an empty value means
    none, as CUDA reads it), else every GPU nvidia-smi lists."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu.strip() for gpu in visible.split(",") if gpu.strip()]
    return listed_gpus()


def worker_gpu(gpus: list[str], worker_id: str) -> str | None:
    """The GPU for xdist worker `worker_id` ('gw0', 'gw1', ...): one GPU per worker, round
    robin when there are more workers than GPUs; None without GPUs (the worker's
    CUDA_VISIBLE_DEVICES is then left as it is)."""
    if not gpus:
        return None
    digits = re.sub(r"\D", "", worker_id)
    return gpus[int(digits or 0) % len(gpus)]

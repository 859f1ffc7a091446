"""The Python interpreters that can run each Keras backend, for tests that run one in a subprocess.

A backend's tests run in a fresh interpreter with KERAS_BACKEND set (Keras picks its
backend once per process, and the test process's Keras is on TensorFlow). Which
interpreter: CATSDOGS_TEST_<BACKEND>_PYTHON when set (e.g. a virtual environment with
JAX and no TensorFlow at all, README "Keras backends"), else this one when the backend's
package is installed here. Missing: the test skips locally and fails in CI (CI installs
jax and torch, .ci/run), as the report tests do for pdflatex and Chromium.

`without_tensorflow` hides TensorFlow from an interpreter that has it: a `tensorflow`
package first on PYTHONPATH that raises ModuleNotFoundError, as a missing one does, so a
run on jax or torch that needed TensorFlow anywhere fails there.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
#: What .ci/run installs for each backend beside TensorFlow (README "Keras backends").
INSTALL = {"tensorflow": "pip install -e '.[test]'", "jax": "pip install 'jax==0.10.*'",
           "torch": "pip install torch==2.13.0"}


def backend_python(backend: str) -> str | None:
    """The interpreter for `backend`, or None where there is none."""
    explicit = os.environ.get(f"CATSDOGS_TEST_{backend.upper()}_PYTHON", "").strip()
    if explicit:
        return explicit
    return sys.executable if importlib.util.find_spec(backend) is not None else None


def require_backend(backend: str) -> str:
    """The interpreter for `backend`; skip (not in CI) or fail (in CI) without one."""
    python = backend_python(backend)
    if python:
        return python
    message = (f"no Python with {backend} ({INSTALL[backend]}, or name one in "
               f"CATSDOGS_TEST_{backend.upper()}_PYTHON)")
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install it (.ci/run)")
    pytest.skip(message)


def has_tensorflow(python: str) -> bool:
    """Whether `python` can import TensorFlow (or at least finds it)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"
    return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0


def hide_tensorflow(folder: Path) -> Path:
    """A folder whose `tensorflow` package fails to import as a missing one does."""
    package = folder / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'tensorflow\' (hidden by the test: a '
        'machine without TensorFlow)", name="tensorflow")\n')
    return folder


def backend_env(backend: str, *, hidden: Path | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a backend's subprocess: this checkout's catsdogs first on the
    path (and `hidden` before it, when TensorFlow must be absent), KERAS_BACKEND set, no
    CATSDOGS_* of the caller's."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    environ.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg",
                   PYTHONPATH=os.pathsep.join(str(p) for p in (hidden, ROOT) if p))
    environ.update(extra or {})
    return environ


def run_python(python: str, args: list[str], environ: dict[str, str], *, timeout: float = 600,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], capture_output=True, text=True, env=environ,
                          timeout=timeout, cwd=cwd or ROOT, check=False)

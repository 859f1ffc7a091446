"""Real outside programs the tests drive (pdflatex, pdftotext, Chromium; unshare): found or not.

Locally a missing program skips the test (say which Debian package brings it); in CI
(the CI variable is set, as .ci/run's environment has it) it fails, because CI installs
them and a skipped check there would pass without checking anything. A read-only mount
(`unshare -rm`) needs user namespaces, which containers often lack: its tests skip there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

#: program -> the Debian package(s) .ci/run installs for it.
PACKAGES = {"pdflatex": "texlive-latex-base texlive-latex-recommended texlive-science",
            "chromium": "chromium", "pdftotext": "poppler-utils"}


def require(program: str) -> str:
    """The program's path; skip (not in CI) or fail (in CI) when it is not installed."""
    path = shutil.which(program)
    if path:
        return path
    message = f"{program} not found (apt-get install {PACKAGES[program]})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install it (.ci/run)")
    pytest.skip(message)


def read_only_mounts() -> bool:
    """Whether this process can make a read-only bind mount in a private mount namespace
    (`unshare -rm`): the one way to show a read-only volume to root, who ignores
    permission bits. Without user namespaces the tests that need it skip."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True,
                          check=False).returncode == 0


def read_only_wrap(folder: Path) -> list[str]:
    """A command prefix that runs its command with `folder` mounted read-only."""
    return ["unshare", "-rm", "sh", "-c", f'mount --bind "{folder}" "{folder}" && '
            f'mount -o remount,bind,ro "{folder}" && exec "$@"', "sh"]

"""Real outside programs the report tests drive (pdflatex, pdftotext, Chromium): found, or why not.

Locally a missing program skips the test (say which Debian package brings it); in CI
(the CI variable is set, as .ci/run's environment has it) it fails, because CI installs
them and a skipped check there would pass without checking anything.
"""

from __future__ import annotations

import os
import shutil

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

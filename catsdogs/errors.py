"""Errors a user can fix. The CLI prints them as one line and exits 2; no traceback."""

from __future__ import annotations

import errno
import os

#: Paths longer than this are shortened in the middle when quoted in an error line.
_QUOTE_MAX = 400


class UsageError(Exception):
    """Bad input from the user: an option, a path, a file. The message says what was wrong,
    where, and what was expected, in one line."""

    exit_code = 2


class DataError(UsageError):
    """The dataset (folder, archive, image) is missing, malformed or unsafe."""


class WeightsError(UsageError):
    """Pretrained weights could not be found, downloaded or loaded."""


class ResultsError(UsageError):
    """A result set is missing, unreadable, or not of a schema we know."""


class StorageError(UsageError):
    """A write failed (disk full, I/O error, read-only file system). Not the user's input,
    but still one line saying what failed, where, and how to go on; exit status 1."""

    exit_code = 1
    reason = ""  # the system's words, e.g. "No space left on device (ENOSPC)"


def quoted(path: str | os.PathLike | bytes) -> str:
    """A path as every error line shows it: Python's repr of its text, so a newline, a
    tab, an escape sequence or a byte that is not UTF-8 shows as an escape and the error
    stays one line; a path of thousands of characters is shortened in the middle (its
    length said), so the line stays readable."""
    text = os.fsdecode(path)
    shown = repr(text)
    if len(shown) <= _QUOTE_MAX:
        return shown
    half = _QUOTE_MAX // 2
    return f"{repr(text[:half])[:-1]}...{repr(text[-half:])[1:]} ({len(text):,} characters)"


def os_reason(exc: OSError) -> str:
    """The system's words for a refused call, with the errno's name for searching:
    'No space left on device (ENOSPC)'."""
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}" + (f" ({name})" if name else "")


def system_refusal(exc: OSError) -> str:
    """The one line for an OSError no check foresaw: what the system refused, on which
    path, in its own words, and where to look further."""
    where = f" on {quoted(exc.filename)}" if exc.filename else ""
    return (f"the system refused an operation{where}: {os_reason(exc)}; expected paths and "
            "a disk it accepts (--debug shows where it happened)")

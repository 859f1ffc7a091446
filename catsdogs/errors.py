"""Errors a user can fix. The CLI prints them as one line and exits 2; no traceback."""


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

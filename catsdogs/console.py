"""How a command's outcome reaches the terminal: one line on stderr and a documented exit status.

Every command runs inside `outcome`, so whatever it raises ends the same way, without a
traceback (`--debug` shows it): bad input is one line and exit 2 (UsageError, its
subclasses' own codes: a failed write 1), Ctrl-C one line and 130, anything else the
operating system refuses (a name too long, an I/O error no check foresaw) one line
naming the path and 1. Standard output is guarded while the command runs: a closed pipe
(`catsdogs report SET | head -1`) ends quietly with 141, as `cat` or `git` do, and a
full device is one line and exit 1.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from catsdogs.errors import UsageError, os_reason, system_refusal

#: Exit status after a closed pipe on standard output, as a command killed by SIGPIPE
#: reports it (what `yes | head -1` and git report): 128 + 13.
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130
#: Commands that read result sets and never write one (an interruption changes none).
READ_ONLY_COMMANDS = ("data", "report", "compare", "trend", "speed")


class OutputFailed(Exception):
    """Standard output refused a write: a closed pipe (`| head -1`) or a full device."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class GuardedOutput:
    """sys.stdout while a command runs: a write or flush the system refuses becomes
    OutputFailed, told apart from every other OSError, so `outcome` can end quietly on a
    closed pipe and in one line on a full disk."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise OutputFailed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputFailed(exc) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _drop_stdout(stream) -> None:
    """Point the real standard output at /dev/null, so the interpreter's own flush at
    exit does not fail a second time (and print "Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


def error_line(text: str) -> None:
    """The one error line: `catsdogs: error: ...` on stderr."""
    print(f"catsdogs: error: {text}", file=sys.stderr, flush=True)


def _guarded(command: Callable[[], int]) -> int:
    """`command()` with standard output guarded, and flushed before it counts as done."""
    real = sys.stdout
    sys.stdout = GuardedOutput(real)
    try:
        code = command()
        sys.stdout.flush()
        return code
    except OutputFailed:
        _drop_stdout(real)
        raise
    finally:
        sys.stdout = real


def outcome(command: Callable[[], int], argv: list[str]) -> int:
    """Run `command` (one catsdogs command) and turn whatever it raises into one line on
    stderr and the documented exit status."""
    debug = "--debug" in argv
    try:
        return _guarded(command)
    except UsageError as exc:
        if debug:
            raise
        error_line(str(exc))
        return exc.exit_code
    except OutputFailed as failed:
        if isinstance(failed.error, BrokenPipeError):
            return EXIT_BROKEN_PIPE  # the reader has all it wanted: no line, like cat
        error_line(f"could not write to standard output: {os_reason(failed.error)}; "
                   "expected a writable output (a full disk or device?)")
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        command = _command(argv)
        print(f"interrupted (Ctrl-C): catsdogs {command} stopped before it finished"
              + ("; no result set was changed" if command in READ_ONLY_COMMANDS else ""),
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except OSError as exc:  # what no check foresaw: still one line, naming the path
        if debug:
            raise
        error_line(system_refusal(exc))
        return 1


def _command(argv: list[str]) -> str:
    """The subcommand's name, for messages ('report'), or '' before one was given."""
    return next((word for word in argv if not word.startswith("-")), "")

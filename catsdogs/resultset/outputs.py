"""Where a command may write: never inside a result set, never among the sets of `runs/`.

Result sets are append-only (catsdogs.resultset.store writes them, and only by appending
rows). Every output path of every command (report --out and --readme, trend --out,
--json of compare and trend, --results-dir, and the outputs of commands still to come)
passes `check_output_path` before anything is computed, so a report, a JSON or a new set
can never land in a recorded set, replace one of its files, or sit among the sets where
`trend results/runs/*` would read it as one. `check_appendable` is the same question for
`--resume`: can a row be appended here, asked before anything trains.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from catsdogs.errors import UsageError, os_reason, quoted
from catsdogs.fsutil import check_creatable, check_path_length, read_only_mount
from catsdogs.resultset.schema import ENVIRONMENT_JSON, EPOCHS_CSV, LOCK_FILE, RUNS_CSV


def check_writable(results_dir: str | Path) -> Path:
    """`results_dir/runs`, after checking a file could be made there: a UsageError
    otherwise. Creates and writes nothing (it asks the nearest existing folder, which
    also sees a read-only mount, as root too), so a session refused later (another
    TensorFlow release, bad weights) leaves no trace. Cheap: no TensorFlow needed.
    A results folder inside a result set (or among the sets of `runs/`) is refused too:
    new sets must never land inside recorded ones."""
    check_path_length("--results-dir", results_dir)
    runs_root = Path(results_dir) / "runs"
    check_output_path("--results-dir", results_dir, folder=True, create_check=False)
    problem = _cannot_create(runs_root)
    if problem is None:
        return runs_root
    raise UsageError(f"--results-dir: cannot write into {quoted(runs_root)} ({problem}); "
                     "expected a writable folder")


def _cannot_create(folder: Path) -> str | None:
    """Why nothing could be made in `folder` (created if missing), e.g. "'/x': Read-only
    file system"; None when it can."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{quoted(existing)}: {os.strerror(errno.ENOTDIR)}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{quoted(existing)}: "
                f"{os.strerror(errno.EROFS if read_only_mount(existing) else errno.EACCES)}")
    return None


def made_runs_root(results_dir: str | Path) -> Path:
    """`results_dir/runs`, checked (`check_writable`) and then created."""
    runs_root = check_writable(results_dir)
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--results-dir: cannot create {quoted(runs_root)} "
                         f"({os_reason(exc)}); expected a writable folder") from None
    return runs_root


def check_appendable(path: str | Path, option: str = "--resume") -> None:
    """Refuse (UsageError) a result set this process could not append a row to: its folder
    not writable (a read-only volume, no permission) or its lock file not openable for
    writing. With `read_set` (which refuses every file the writer could not append to
    byte for byte) this is everything `append_run` needs, checked before a session
    trains, so a --resume session never trains a model it cannot record. Writes nothing."""
    path = Path(path)
    problem = _cannot_create(path)
    lock = path / LOCK_FILE
    if problem is None and lock.exists() and (not lock.is_file()
                                              or not os.access(lock, os.R_OK | os.W_OK)):
        problem = f"{quoted(lock)}: cannot be opened for writing (the set's lock)"
    if problem is not None:
        raise UsageError(f"{option} {quoted(path)}: cannot append to this result set "
                         f"({problem}); expected a result set on a writable volume")


# ---------------------------------------------------------------- where outputs may go


def is_result_set(folder: str | Path) -> bool:
    """Whether `folder` holds a result set, whole or damaged: any of its three files."""
    folder = Path(folder)
    try:
        return any((folder / name).exists() for name in (RUNS_CSV, EPOCHS_CSV,
                                                         ENVIRONMENT_JSON))
    except OSError:
        return False


def is_runs_folder(folder: str | Path) -> bool:
    """Whether `folder` is a folder of result sets, `<results dir>/runs/`: named `runs`
    (as every session names it) and holding at least one set. The documented `trend
    results/runs/*` reads each of its entries as a set, so nothing else may go there."""
    folder = Path(folder)
    if folder.name != "runs":
        return False
    try:
        return any(child.is_dir() and is_result_set(child) for child in folder.iterdir())
    except OSError:
        return False


def check_output_path(option: str, path: str | Path, *, folder: bool = False,
                      create_check: bool = True) -> Path:
    """The one check every output path of every command passes before anything is
    computed (report --out, --readme, trend --out, --json, --results-dir, and the
    outputs of commands to come). Refuses, as a UsageError (exit 2) naming `option`:

    - a path inside a result set, or one of its files (result sets are append-only: a
      report or a JSON written there would change what a benchmark recorded, or destroy
      it), after resolving symbolic links and `..`, whether or not it exists yet;
    - a path in a folder of result sets (`results/runs/` itself, or anything in it),
      which every `results/runs/*` would then read as a broken set;
    - a path the file system would refuse: a name or path too long, a file path that is
      a folder (or a FIFO), a folder path that is a file, a folder that cannot be created
      or written (read-only, no permission; `create_check`).

    `folder`: the option names a folder (--out) rather than a file (--json). Returns
    the path as given. Creates and writes nothing."""
    path = Path(path)
    check_path_length(option, path)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop
        raise UsageError(f"{option} {quoted(path)}: cannot be resolved ({exc}); expected a "
                         "path without a symbolic-link loop") from None
    for place in (resolved, *resolved.parents):
        if is_result_set(place):
            hint = "; leave --out out for report/<set>/" if option == "--out" else ""
            if place == resolved and path.is_dir():
                raise UsageError(f"{option} {quoted(path)}: is a result set; expected a "
                                 f"{'folder' if folder else 'file'} of its own, outside "
                                 f"every result set (result sets are append-only{hint})")
            raise UsageError(f"{option} {quoted(path)}: is inside the result set "
                             f"{quoted(place)}; expected a path outside every result set "
                             f"(result sets are append-only{hint})")
        if is_runs_folder(place):
            where = "is" if place == resolved else "is in"
            raise UsageError(f"{option} {quoted(path)}: {where} {quoted(place)}, the folder "
                             "of result sets (every entry there is read as a set); expected "
                             "a path outside it, e.g. report/ beside it")
    if create_check:
        check_creatable(option, path, folder=folder)
    return path

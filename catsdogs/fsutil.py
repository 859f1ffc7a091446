"""File-system primitives the stages share: a lock, an atomic write, a file hash, a cache root,
and the checks an output path passes before anything is computed (length, type, creatable)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from catsdogs.errors import StorageError, UsageError, os_reason, quoted

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process locking
    fcntl = None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if needed), held across processes:
    xdist workers, two CI jobs on one runner, or two sessions resuming one result set."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as exc:  # a read-only volume, a lock file made a folder: one line
        raise _storage_error(path, exc, "could not lock") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _storage_error(path: Path, exc: OSError, what: str = "could not write") -> StorageError:
    """One line for a failed write: which file, and the system's reason (disk full, I/O
    error, read-only file system), which the user can act on."""
    reason = os_reason(exc)
    error = StorageError(f"{what} {quoted(path)}: {reason}")
    error.reason = reason
    return error


def write_new_file(path: Path, text: str | bytes, shown_as: Path | None = None) -> None:
    """Create `path` (it must not exist) holding `text` (or bytes, as given), flushed to
    disk. On any error the partial file is removed and a StorageError names `shown_as`
    (the file the user knows, when `path` is a temporary name for it): no 0-byte files
    left behind."""
    shown_as = shown_as or path
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _storage_error(shown_as, exc) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _remove_quietly(path)
        raise _storage_error(shown_as, exc) from None
    os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write_all(pairs: Iterable[tuple[Path, str | None]]) -> None:
    """Replace several files together: each new text goes to a temporary file beside its
    target (fsynced), and only when every one is complete are they renamed over the old
    files; if a rename fails, the files already renamed get their old contents back
    (kept as hard links, which need no space). A reader, a `kill -9` or a full disk sees
    the old files or the new ones, never half of one, and no temporary file is left
    behind. Entries whose text is None are skipped."""
    pairs = [(Path(path), text) for path, text in pairs if text is not None]
    temps: list[Path] = []
    backups: dict[Path, Path] = {}
    try:
        for path, text in pairs:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            _remove_quietly(tmp)
            temps.append(tmp)
            write_new_file(tmp, text, shown_as=path)
        if len(pairs) > 1:
            for path, _ in pairs:
                if path.exists():
                    backups[path] = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
                    temps.append(backups[path])
                    _remove_quietly(backups[path])
                    _call(path, os.link, path, backups[path])
        done: list[Path] = []
        for (path, _), tmp in zip(pairs, temps):
            try:
                _call(path, os.replace, tmp, path)
            except StorageError:
                for replaced in done:  # put back what this call already changed
                    if replaced in backups:
                        os.replace(backups[replaced], replaced)
                raise
            done.append(path)
    finally:
        for tmp in temps:
            _remove_quietly(tmp)


def _call(path: Path, function, *args) -> None:
    """`function(*args)`, an OSError becoming a StorageError about `path`."""
    try:
        function(*args)
    except OSError as exc:
        raise _storage_error(path, exc) from None


def atomic_write(path: Path, text: str) -> None:
    """Write one file atomically (see `atomic_write_all`)."""
    atomic_write_all([(path, text)])


_CHUNK = 1024 * 1024


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in chunks: the dataset manifest and the weights
    file are hashed the same way, so the two can never disagree on what a hash means."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def keras_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Keras' cache root: `$KERAS_HOME` if set, else `~/.keras`. Datasets live in its
    `datasets/` folder and model weights in `models/`; we share it so a file Keras already
    downloaded is reused."""
    env = os.environ if environ is None else environ
    if env.get("KERAS_HOME"):
        return _cache_folder(Path(env["KERAS_HOME"]).expanduser(), "KERAS_HOME")
    home = env.get("HOME") if environ is not None else None
    return _cache_folder((Path(home) if home else Path.home()) / ".keras", "the Keras cache")


def _cache_folder(root: Path, named: str) -> Path:
    """`root`, unless it (or the nearest existing path above it) is a file: then Keras
    could make neither datasets/ nor models/ in it, and the user is told which setting."""
    existing = nearest_existing(root)
    if _exists(existing) and not existing.is_dir():
        problem = ("is a file, not a folder" if existing == root
                   else f"cannot be a folder, {quoted(existing)} is a file")
        raise UsageError(f"{named} {quoted(root)}: {problem}; expected a folder for Keras' "
                         "cache (datasets/, models/); set KERAS_HOME to one")
    return root


# ---------------------------------------------------------------- output paths, checked first

#: What POSIX promises when a file system does not say (NAME_MAX, PATH_MAX on Linux).
_NAME_MAX, _PATH_MAX = 255, 4096


def nearest_existing(path: Path) -> Path:
    """`path`, or the closest folder above it that exists (where a new file would go)."""
    existing = Path(path)
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    return existing


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def _limit(path: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(nearest_existing(path), name))
    except (OSError, ValueError):
        return default


def check_path_length(option: str, path: str | os.PathLike) -> None:
    """Refuse (UsageError, naming `option`) a path the file system would refuse with
    ENAMETOOLONG: a component longer than its NAME_MAX bytes or a whole path longer than
    PATH_MAX. Asked before anything is computed, so the refusal is one line, not a
    traceback from deep inside a write."""
    text = os.fspath(path)
    encoded = os.fsencode(text)
    if len(encoded) >= _limit(Path("/"), "PC_PATH_MAX", _PATH_MAX):
        raise UsageError(f"{option} {quoted(text)}: the path is {len(encoded):,} bytes long; "
                         f"expected at most {_limit(Path('/'), 'PC_PATH_MAX', _PATH_MAX) - 1:,} "
                         "(the file system's limit)")
    name_max = _limit(Path(text), "PC_NAME_MAX", _NAME_MAX)
    for part in Path(text).parts:
        if len(os.fsencode(part)) > name_max:
            shown = quoted(part if len(part) <= 40 else part[:40] + "...")
            raise UsageError(f"{option} {quoted(text)}: its part {shown} is "
                             f"{len(os.fsencode(part)):,} bytes long; expected names of at "
                             f"most {name_max} bytes (the file system's limit)")


#: What a path that is not a regular file is, in the words of every message.
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"))


def mode_kind(mode: int) -> str | None:
    """'a FIFO', 'a folder', ... for a file mode that is not a regular file's; None for a
    regular file or a kind without a name."""
    return next((kind for test, kind in _KINDS if test(mode)), None)


def path_kind(path: str | os.PathLike) -> str:
    """What is at `path`, for a message: 'a regular file', 'a folder', 'a FIFO', 'a
    dangling symbolic link', 'nothing', ... (never opens it, so a FIFO cannot hang)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a dangling symbolic link" if os.path.islink(path) else "nothing"
    except OSError as exc:
        return f"unreadable ({os_reason(exc)})"
    if stat.S_ISREG(mode):
        return "a regular file"
    return mode_kind(mode) or "not a regular file"


def check_creatable(option: str, path: str | os.PathLike, folder: bool = False) -> None:
    """Refuse (UsageError, exit 2, naming `option`) an output path that cannot be written
    or is of the wrong kind: a file path that is a folder (or a FIFO, a device), a folder
    path that is a file, or a path whose nearest existing folder is a file, unwritable or
    on a read-only volume. Creates and writes nothing (it asks with os.access, which sees
    a read-only mount, as root too)."""
    path = Path(path)
    check_path_length(option, path)
    expected = "a writable folder" if folder else "a file path in a writable folder"
    try:
        if path.exists() and not (path.is_dir() if folder else path.is_file()):
            wanted = "a folder" if folder else "a file path (the file is replaced whole)"
            raise UsageError(f"{option} {quoted(path)}: is {path_kind(path)}; expected {wanted}")
        existing = nearest_existing(path if folder else path.parent)
        if not existing.is_dir():
            raise UsageError(f"{option} {quoted(path)}: cannot be created, {quoted(existing)} "
                             f"is {path_kind(existing)}, not a folder; expected {expected}")
        if not os.access(existing, os.W_OK | os.X_OK):
            reason = os.strerror(errno.EROFS if read_only_mount(existing) else errno.EACCES)
            verb = "write into" if existing == path else "create"
            raise UsageError(f"{option}: cannot {verb} {quoted(path)} ({quoted(existing)}: "
                             f"{reason}); expected {expected}")
    except OSError as exc:  # a symbolic-link loop, an I/O error while looking
        raise UsageError(f"{option} {quoted(path)}: cannot be used ({os_reason(exc)}); "
                         f"expected {expected}") from None


def read_only_mount(path: Path) -> bool:
    """Whether `path` lies on a file system mounted read-only (for messages only)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# ---------------------------------------------------------------- staging folders

#: A staging folder younger than this is never taken for abandoned: between making it and
#: locking it, its builder holds no lock yet.
STAGING_GRACE_S = 10.0


@contextlib.contextmanager
def staging_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A hidden folder `parent/<prefix>XXXX` to build files in, held by a lock for as
    long as the caller works in it and removed afterwards. A process killed while
    building (SIGKILL, a power cut) cannot remove its folder; `remove_abandoned` finds
    such folders by their lock being free, and the next successful run removes them."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    handle = os.open(folder, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield folder
    finally:
        os.close(handle)
        shutil.rmtree(folder, ignore_errors=True)


def remove_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Remove every `parent/<prefix>*` folder whose builder is gone (its lock is free);
    a folder another process is still building in is left alone. Returns those removed."""
    removed: list[Path] = []
    if fcntl is None:  # pragma: no cover - no way to tell a live builder from a dead one
        return removed
    for folder in sorted(Path(parent).glob(prefix + "*")):
        try:
            if time.time() - folder.lstat().st_mtime < STAGING_GRACE_S:
                continue  # just made: its builder may not have taken the lock yet
            handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: a report is being built there right now
        finally:
            os.close(handle)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed

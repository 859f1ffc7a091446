"""File-system primitives the stages share: a lock, an atomic write, a file hash, a cache root."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from catsdogs.errors import StorageError

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
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _storage_error(path: Path, exc: OSError) -> StorageError:
    """One line for a failed write: which file, and the system's reason (disk full, I/O
    error, read-only file system), which the user can act on."""
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{exc.strerror or exc}" + (f" ({name})" if name else "")
    error = StorageError(f"could not write {path}: {reason}")
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
        return Path(env["KERAS_HOME"]).expanduser()
    home = env.get("HOME") if environ is not None else None
    return (Path(home) if home else Path.home()) / ".keras"

"""Find, download and safely unpack cats_and_dogs_filtered (scan.py checks and fingerprints it).

Why this module exists: every result row says which data it was trained on, so the data
must be found the same way everywhere (CLI, pytest, CI), refused loudly when it is broken,
and identified by a fingerprint rather than by a path. It never imports TensorFlow, so
`catsdogs data` and the test suite stay fast.

Where the data comes from, first match wins (`locate_dataset`):
  1. an explicit folder (`--data-dir DIR`),
  2. the environment (`CATSDOGS_DATA_DIR`, then its short form `CATSDOGS_DATA`),
  3. the Keras cache, in both layouts Keras has used for
     `get_file("cats_and_dogs.zip", ..., extract=True)`,
  4. a download of the official archive into the Keras cache.

Downloads follow what Keras' own `get_file` does right: the size is pinned, a partial file
never takes the final name, and archive members that would land outside the target folder
(`..`, absolute paths, drive letters, links) are refused instead of silently skipped.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import socket
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from catsdogs.constants import SPLITS
from catsdogs.errors import DataError, quoted
from catsdogs.fsutil import file_lock, keras_cache_dir
from catsdogs.options import OPTIONS_BY_NAME

# ---------------------------------------------------------------- what the data is

ARCHIVE_NAME = "cats_and_dogs_filtered.zip"
#: Size in bytes of the official archive: a download of any other size is refused.
ARCHIVE_SIZE = 68_606_236
#: The official location first, then Google's mirror of the same file.
ARCHIVE_URLS = (
    "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
    "https://download.mlcc.google.com/mledu-datasets/cats_and_dogs_filtered.zip",
)
DATASET_NAME = "cats_and_dogs_filtered"
#: Declared once, in the options registry (data_dir and its aliases).
ENV_VARS = OPTIONS_BY_NAME["data_dir"].env_names

#: Folder Keras >= 3.6 extracts `cats_and_dogs.zip` into (inside `<keras home>/datasets`).
KERAS_EXTRACTED_DIR = "cats_and_dogs_extracted"
#: Refuse archives that declare more than this uncompressed (the real one is ~68 MB):
#: a small zip must not be able to fill the disk.
MAX_EXTRACTED_BYTES = 2 * 1024**3
_CHUNK = 1024 * 1024
_HINT = "pass --data-dir DIR (or CATSDOGS_DATA) or use --synthetic"

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------- where to look


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def candidate_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where Keras leaves the dataset after `get_file("cats_and_dogs.zip", extract=True)`:
    `datasets/cats_and_dogs_filtered` before Keras 3.6, and
    `datasets/cats_and_dogs_extracted/cats_and_dogs_filtered` from 3.6 on."""
    datasets = keras_cache_dir(environ) / "datasets"
    return [datasets / DATASET_NAME, datasets / KERAS_EXTRACTED_DIR / DATASET_NAME]


def _given_dir(path: Path, source: str) -> Path:
    """A folder the user named. It must exist; if it is the folder *above* the dataset
    (e.g. Keras' `cats_and_dogs_extracted`), step into `cats_and_dogs_filtered`."""
    path = path.expanduser()
    if not path.exists():
        raise DataError(f"{source} {quoted(path)}: no such folder; expected a {DATASET_NAME} "
                        "folder with train/ and validation/")
    inner = path / DATASET_NAME
    if path.is_dir() and not (path / SPLITS[0]).exists() and (inner / SPLITS[0]).is_dir():
        return inner
    return path


def locate_dataset(data_dir: str | os.PathLike | None = None, *, download: bool = True,
                   urls: Sequence[str] = ARCHIVE_URLS, expected_size: int = ARCHIVE_SIZE,
                   environ: Mapping[str, str] | None = None,
                   progress: Progress | None = None) -> Path:
    """The dataset folder to use: `data_dir`, else `$CATSDOGS_DATA_DIR` (`$CATSDOGS_DATA`),
    else an existing Keras cache copy, else a fresh download into the Keras cache.

    The folder is not checked here (`scan_dataset` does that). When nothing works the
    DataError is one line listing every place and URL tried and why each failed, so a
    user offline knows at once to pass a folder or use --synthetic."""
    env = _env(environ)
    if data_dir is not None and str(data_dir) != "":
        return _given_dir(Path(data_dir), "--data-dir")
    for var in ENV_VARS:
        if env.get(var):
            return _given_dir(Path(env[var]), f"${var}")
    candidates = candidate_dirs(env)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = f"no {DATASET_NAME} dataset: not in {' or '.join(map(quoted, candidates))}"
    if not download:
        raise DataError(f"{looked}; downloading is off; {_HINT}")
    try:
        return fetch_dataset(keras_cache_dir(env), urls=urls, expected_size=expected_size,
                             progress=progress)
    except DataError as exc:
        raise DataError(f"{looked}; {exc}; {_HINT}") from None


# ---------------------------------------------------------------- download


def _why(exc: BaseException, timeout: float) -> str:
    """A short human reason for a failed fetch ('no network', 'HTTP 404', ...)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial):,} bytes of a read"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__}: {exc})"
    if isinstance(exc, ValueError):
        return f"not a URL we can fetch ({exc})"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return "no network (cannot resolve host)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, FileNotFoundError):
        return "no such file"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no network (unreachable)"
    text = str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    return text.replace("\n", " ") or type(reason).__name__


def _stream(url: str, part: Path, *, expected_size: int, progress: Progress | None,
            timeout: float) -> None:
    """Copy `url` into `part`, refusing as soon as the size cannot be `expected_size`."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.isdigit() and int(announced) != expected_size:
            raise DataError(f"got {int(announced):,} bytes (Content-Length), "
                            f"expected {expected_size:,}")
        done = 0
        if progress:
            progress(0, expected_size)
        with open(part, "wb") as out:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                done += len(chunk)
                if done > expected_size:
                    raise DataError(f"got more than {expected_size:,} bytes, "
                                    f"expected {expected_size:,}")
                out.write(chunk)
                if progress:
                    progress(done, expected_size)
            out.flush()
            os.fsync(out.fileno())
    if done != expected_size:
        raise DataError(f"got {done:,} bytes, expected {expected_size:,}")


def download_archive(urls: Iterable[str], dest: Path, *, expected_size: int,
                     progress: Progress | None = None, timeout: float = 60) -> Path:
    """Download to `dest`, trying each URL in turn (any scheme urllib knows: https, http,
    file). Returns `dest`.

    Data streams into `dest + ".part"` and only takes the final name (os.replace) after its
    byte count equals `expected_size`, so an interrupted or truncated download is never
    mistaken for the archive; a `.part` left by a killed run is discarded and restarted. A
    `dest` already of the right size is reused without touching the network. If every URL
    fails, one DataError names each URL and why."""
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)  # one URL, not its characters
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    with file_lock(dest.with_suffix(dest.suffix + ".lock")):
        if dest.is_file() and dest.stat().st_size == expected_size:
            return dest
        failures = []
        for url in urls:
            part.unlink(missing_ok=True)
            try:
                _stream(url, part, expected_size=expected_size, progress=progress,
                        timeout=timeout)
            except DataError as exc:
                failures.append(f"{url}: {exc}")
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                failures.append(f"{url}: {_why(exc, timeout)}")
            else:
                os.replace(part, dest)
                return dest
            finally:
                part.unlink(missing_ok=True)  # after os.replace there is nothing left
    tried = "; ".join(failures) if failures else "no URLs given"
    raise DataError(f"could not download {dest.name} to {quoted(dest)}: {tried}")


# ---------------------------------------------------------------- safe extraction


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    if not zip_path.is_file():
        raise DataError(f"archive {quoted(zip_path)}: no such file; expected a zip archive")
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"archive {quoted(zip_path)}: not a zip file ({exc}); expected a zip "
                        f"archive such as the official {ARCHIVE_NAME}") from None


def _check_member(zip_path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                  target: Path) -> None:
    """Refuse any member that could write outside `target` (or anywhere unexpected)."""
    name = info.filename

    def refuse(what: str) -> DataError:
        return DataError(f"archive {quoted(zip_path)}: member {name!r} {what}; expected plain "
                         f"files with relative paths inside {quoted(target)}")

    if stat.S_ISLNK(info.external_attr >> 16):
        link = zf.read(info).decode("utf-8", "replace")
        resolved = os.path.normpath(os.path.join(os.path.dirname(name), link))
        where = "outside the target folder" if (
            os.path.isabs(link) or resolved == ".." or resolved.startswith("../")
        ) else "elsewhere in the archive"
        raise refuse(f"is a symbolic link to {link!r} ({where})")
    if name.startswith(("/", "\\")):
        raise refuse("has an absolute path")
    if re.match(r"^[A-Za-z]:", name):
        raise refuse("has a drive letter")
    if ".." in re.split(r"[\\/]", name):
        raise refuse("has a '..' component")
    if "\x00" in name:
        raise refuse("has a NUL byte in its name")
    base = os.path.realpath(target)
    landed = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([base, landed]) != base:  # last line of defence
        raise refuse("would land outside the target folder")


def _move_into_place(zip_path: Path, tmp: Path, target: Path) -> None:
    """Rename the finished extraction to `target`. If `target` already is a folder, add the
    archive's top-level entries to it, but refuse before moving anything if one exists."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if not target.is_dir():
        raise DataError(f"extracting {quoted(zip_path)}: {quoted(target)} is a file; expected a "
                        "folder")
    entries = sorted(tmp.iterdir())
    for entry in entries:
        if (target / entry.name).exists():
            raise DataError(f"extracting {quoted(zip_path)}: {quoted(target / entry.name)} "
                            "already exists; expected to add new entries only (delete it to "
                            "re-extract)")
    for entry in entries:
        os.rename(entry, target / entry.name)


def safe_extract(zip_path: Path, target: Path) -> None:
    """Extract a zip archive into `target`, all or nothing.

    Every member is checked before a byte is written: a file that is not a zip, members
    with absolute paths, drive letters, `..` components or symbolic links (zip
    external_attr S_IFLNK; Python would write them as plain files holding the link text,
    and a link can point anywhere) and archives declaring more than MAX_EXTRACTED_BYTES are
    refused with a DataError naming the archive and the member. Extraction goes into a
    temporary folder beside `target` and is renamed into place only when complete, so a
    failure (corrupt member, full disk) leaves nothing half-done behind."""
    zip_path, target = Path(zip_path), Path(target)
    with _open_zip(zip_path) as zf:
        members = zf.infolist()
        for info in members:
            _check_member(zip_path, zf, info, target)
        declared = sum(info.file_size for info in members)
        if declared > MAX_EXTRACTED_BYTES:
            raise DataError(f"archive {quoted(zip_path)}: declares {declared:,} bytes "
                            f"uncompressed; expected at most {MAX_EXTRACTED_BYTES:,}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        try:
            for info in members:
                try:
                    zf.extract(info, tmp)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                    raise DataError(f"archive {quoted(zip_path)}: member {info.filename!r} "
                                    f"could not be extracted ({exc}); expected an intact "
                                    "archive") from None
            _move_into_place(zip_path, tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_dataset(cache_dir: Path | None = None, *, urls: Sequence[str] = ARCHIVE_URLS,
                  expected_size: int = ARCHIVE_SIZE, progress: Progress | None = None) -> Path:
    """Download and unpack the official archive into the Keras cache (`cache_dir`, default
    `keras_cache_dir()`), using the Keras >= 3.6 layout so Keras and we share one copy:
    `datasets/cats_and_dogs_filtered.zip` -> `datasets/cats_and_dogs_extracted/`.
    Returns the `cats_and_dogs_filtered` folder, reusing it if already there."""
    datasets = Path(cache_dir if cache_dir is not None else keras_cache_dir()) / "datasets"
    extracted = datasets / KERAS_EXTRACTED_DIR
    final = extracted / DATASET_NAME
    with file_lock(datasets / f".{DATASET_NAME}.lock"):
        if final.is_dir():
            return final
        archive = download_archive(urls, datasets / ARCHIVE_NAME,
                                   expected_size=expected_size, progress=progress)
        try:
            with _open_zip(archive) as zf:
                names = zf.namelist()
            if not any(n.startswith(f"{DATASET_NAME}/") for n in names):
                raise DataError(f"archive {quoted(archive)}: has no {DATASET_NAME}/ folder at its "
                                f"top; expected the official {ARCHIVE_NAME}")
            safe_extract(archive, extracted)
        except DataError as exc:
            # A refused archive must not be reused as "already downloaded" next time.
            archive.unlink(missing_ok=True)
            raise DataError(f"{exc} (deleted it, so the next run downloads it again)") from None
    return final

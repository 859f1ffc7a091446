"""Disk full and I/O errors while a result set is written: one line (what failed, where,
how to go on), the last complete CSVs intact, no temporary file left, and a set either
created whole or not at all.

The fault is injected at every write call the writer makes (os.open for writing,
os.write, os.fsync, os.link, os.replace, os.rename, os.mkdir), one call at a time, with the errno
a full disk (ENOSPC) or a failing disk (EIO) gives; where the machine allows mounting a
tmpfs, a really full 64 KiB file system is used as well.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from catsdogs.errors import StorageError, UsageError
from catsdogs.resultset.load import read_set
from catsdogs.resultset.store import ResultSet

ENV = {"host": "testhost", "tf_version": "2.99", "device_label": "cpu"}


def run_row(run_id: str, seed: int) -> dict:
    return {"run_id": run_id, "variant": "baseline_cnn", "seed": seed, "status": "ok",
            "n_test": 4, "test_correct": 3, "test_accuracy": 0.75,
            "finished_utc": "2030-01-01T00:05:00+00:00"}


def epoch_rows(run_id: str, seed: int) -> list[dict]:
    return [{"run_id": run_id, "variant": "baseline_cnn", "seed": seed, "epoch": e,
             "loss": 0.5, "accuracy": 0.7} for e in (1, 2)]


class Faults:
    """Counts the write calls made under `root` and fails the `fail_at`-th with `code`."""

    def __init__(self, monkeypatch, root: Path, fail_at: int | None, code: int) -> None:
        self.root, self.fail_at, self.code = str(root), fail_at, code
        self.calls: list[str] = []
        self.fds: set[int] = set()
        real = {name: getattr(os, name) for name in ("open", "write", "fsync", "replace",
                                                     "rename", "mkdir", "link")}

        def counted(name, target, call):
            self.calls.append(f"{name} {target}")
            if len(self.calls) == self.fail_at:
                raise OSError(self.code, os.strerror(self.code), str(target))
            return call()

        def fake_open(path, flags, *args, **kwargs):
            if str(path).startswith(self.root) and flags & (os.O_WRONLY | os.O_RDWR):
                fd = counted("open", path, lambda: real["open"](path, flags, *args, **kwargs))
                self.fds.add(fd)
                return fd
            return real["open"](path, flags, *args, **kwargs)

        def by_fd(name):
            def call(fd, *args):
                if fd in self.fds:
                    return counted(name, fd, lambda: real[name](fd, *args))
                return real[name](fd, *args)
            return call

        def by_path(name):
            def call(src, *args, **kwargs):
                exists = name == "mkdir" and os.path.isdir(src)  # no write: nothing to fail
                if str(src).startswith(self.root) and not exists:
                    return counted(name, src, lambda: real[name](src, *args, **kwargs))
                return real[name](src, *args, **kwargs)
            return call

        monkeypatch.setattr(os, "open", fake_open)
        for name in ("write", "fsync"):
            monkeypatch.setattr(os, name, by_fd(name))
        for name in ("replace", "rename", "mkdir", "link"):
            monkeypatch.setattr(os, name, by_path(name))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_calls(monkeypatch, root: Path, action) -> int:
    """How many write calls `action` makes under `root` (no fault injected)."""
    with monkeypatch.context() as patch:
        faults = Faults(patch, root, None, errno.ENOSPC)
        action()
    return len(faults.calls)


def _append_calls() -> int:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(_tempdir()))
        result_set = ResultSet.create(tmp, ENV)
        result_set.append_run(run_row("a", 0), epoch_rows("a", 0))
        with pytest.MonkeyPatch.context() as patch:
            faults = Faults(patch, tmp, None, errno.ENOSPC)
            result_set.append_run(run_row("b", 1), epoch_rows("b", 1))
        return len(faults.calls)


@contextlib.contextmanager
def _tempdir():
    import tempfile

    folder = tempfile.mkdtemp(prefix="catsdogs-faults-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


APPEND_CALLS = _append_calls()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("fail_at", range(1, APPEND_CALLS + 1))
def test_fault_while_appending_a_run_leaves_the_set_as_it_was(fail_at, code, tmp_path,
                                                               monkeypatch):
    result_set = ResultSet.create(tmp_path, ENV)
    result_set.append_run(run_row("a", 0), epoch_rows("a", 0))
    before = _files(result_set.path)
    with monkeypatch.context() as patch:
        faults = Faults(patch, tmp_path, fail_at, code)
        with pytest.raises(StorageError) as caught:
            result_set.append_run(run_row("b", 1), epoch_rows("b", 1))
    message = str(caught.value)
    assert "\n" not in message and f"could not write {str(result_set.path)!r}"[:-1] in message
    assert os.strerror(code) in message and errno.errorcode[code] in message
    assert f"add this run again with --resume {str(result_set.path)!r}" in message
    assert len(faults.calls) >= fail_at  # the failed call, then any roll-back
    assert _files(result_set.path) == before  # CSVs intact, no temporary file left
    result_set.append_run(run_row("b", 1), epoch_rows("b", 1))  # once the disk is fine
    assert [row["seed"] for row in read_set(result_set.path).runs] == [0, 1]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_fault_while_creating_a_set_leaves_nothing(code, tmp_path, monkeypatch):
    (tmp_path / "probe" / "runs").mkdir(parents=True)
    total = _write_calls(monkeypatch, tmp_path / "probe", lambda: ResultSet.create(
        tmp_path / "probe", ENV))
    assert total == 11  # mkdir, 3 x (open, write, fsync), rename
    for fail_at in range(1, total + 1):
        results = tmp_path / f"results-{fail_at}"
        (results / "runs").mkdir(parents=True)
        with monkeypatch.context() as patch:
            Faults(patch, results, fail_at, code)
            with pytest.raises(StorageError) as caught:
                ResultSet.create(results, ENV)
        message = str(caught.value)
        assert "\n" not in message and "nothing was recorded" in message, message
        assert os.strerror(code) in message
        assert list((results / "runs").iterdir()) == [], fail_at  # all or nothing


# ---------------------------------------------------------------- a really full disk


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 64 KiB tmpfs, where the machine lets this process mount one (root, Linux)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                             str(mount_point)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'}); "
                    "the injected-errno tests above cover the same write calls")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def _fill(folder: Path) -> None:
    """Fill the file system until a write fails with ENOSPC."""
    with open(folder / f"filler-{uuid.uuid4().hex}", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_really_full_disk_keeps_the_recorded_rows_and_leaves_no_temp_file(tiny_filesystem):
    result_set = ResultSet.create(tiny_filesystem, ENV)
    result_set.append_run(run_row("a", 0), epoch_rows("a", 0))
    before = _files(result_set.path)
    _fill(tiny_filesystem)
    big = dict(run_row("b", 1), error="x" * 2000)
    with pytest.raises(StorageError, match="No space left on device"):
        result_set.append_run(big, epoch_rows("b", 1) * 50)
    assert _files(result_set.path) == before
    with pytest.raises((StorageError, UsageError)):
        ResultSet.create(tiny_filesystem, ENV)  # creation on a full disk: nothing made
    assert [p.name for p in (tiny_filesystem / "runs").iterdir()] == [result_set.name]

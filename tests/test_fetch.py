"""Finding, downloading and unpacking the dataset, tested against the threats: unsafe
archive members, truncated or wrong-size downloads, dead mirrors, no network at all."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from catsdogs.dataset import fetch
from catsdogs.dataset.fetch import (
    ARCHIVE_NAME,
    ARCHIVE_SIZE,
    ARCHIVE_URLS,
    DATASET_NAME,
    KERAS_EXTRACTED_DIR,
    candidate_dirs,
    download_archive,
    fetch_dataset,
    locate_dataset,
    safe_extract,
)
from catsdogs.dataset.scan import scan_dataset
from catsdogs.errors import DataError
from catsdogs.fsutil import keras_cache_dir


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch):
    """A CI runner's http_proxy must not swallow requests to our local test server."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# ---------------------------------------------------------------- helpers


def make_zip(path: Path, members: dict[str, bytes],
             symlinks: dict[str, str] | None = None) -> Path:
    """A zip with the given regular members and symlink members (name -> link target)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, link in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, link)
    return path


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: a dead mirror."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/x.zip"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@contextlib.contextmanager
def serve(directory: Path, handler=None):
    """A real HTTP server on 127.0.0.1 (free port) in a thread; yields its base URL."""
    handler = handler or functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- safe_extract


def test_refuses_member_with_dotdot_traversal(tmp_path):
    bad = make_zip(tmp_path / "a.zip", {"ok.txt": b"1", "sub/../../evil.txt": b"x"})
    with pytest.raises(DataError, match=r"a\.zip.*'sub/\.\./\.\./evil\.txt'.*'\.\.'"):
        safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(tmp_path) == ["a.zip"]


def test_refuses_backslash_dotdot_traversal(tmp_path):
    """Windows separators: `..\\..\\evil` escapes on the machine that unpacks it there."""
    bad = make_zip(tmp_path / "a.zip", {"..\\..\\evil.txt": b"x"})
    with pytest.raises(DataError, match=r"'\.\.'"):
        safe_extract(bad, tmp_path / "out")


def test_refuses_absolute_path_member(tmp_path):
    info = zipfile.ZipInfo("placeholder")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        info.filename = "/tmp/evil.txt"  # ZipInfo() strips a leading '/', so set it after
        zf.writestr(info, b"x")
    with pytest.raises(DataError, match="absolute path"):
        safe_extract(tmp_path / "a.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_drive_letter_member(tmp_path):
    bad = make_zip(tmp_path / "a.zip", {"C:/Windows/evil.txt": b"x"})
    with pytest.raises(DataError, match="drive letter"):
        safe_extract(bad, tmp_path / "out")


def test_refuses_symlink_member_escaping_target(tmp_path):
    bad = make_zip(tmp_path / "a.zip", {"data/ok.txt": b"1"},
                   symlinks={"data/link": "../../../etc/passwd"})
    with pytest.raises(DataError, match=r"'data/link'.*symbolic link.*outside the target"):
        safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_symlink_member_then_file_written_through_it(tmp_path):
    """The classic two-step escape: a link to a folder outside, then a file 'inside' it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    bad = make_zip(tmp_path / "a.zip", {"d/evil.txt": b"x"}, symlinks={"d": str(outside)})
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(bad, tmp_path / "out")
    assert leftovers(outside) == []


def test_refuses_file_that_is_not_a_zip(tmp_path):
    fake = tmp_path / ARCHIVE_NAME
    fake.write_bytes(b"<html>404 Not Found</html>" * 100)
    with pytest.raises(DataError, match=rf"{ARCHIVE_NAME}': not a zip file"):
        safe_extract(fake, tmp_path / "out")


def test_refuses_archive_declaring_huge_uncompressed_size(tmp_path, monkeypatch):
    """A zip bomb: small on disk, enormous unpacked. Refused before writing anything."""
    monkeypatch.setattr(fetch, "MAX_EXTRACTED_BYTES", 1000)
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 5000)
    with pytest.raises(DataError, match="declares 5,000 bytes"):
        safe_extract(tmp_path / "bomb.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_member_leaves_nothing_half_extracted(tmp_path):
    path = make_zip(tmp_path / "a.zip", {"first.txt": b"fine", "second.txt": b"A" * 4000})
    raw = bytearray(path.read_bytes())
    at = raw.index(b"A" * 100)  # stored uncompressed: flip bytes inside the 2nd member
    raw[at:at + 10] = b"B" * 10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"'second\.txt' could not be extracted"):
        safe_extract(path, tmp_path / "out")
    assert leftovers(tmp_path) == ["a.zip"]  # no target, no temporary folder


def test_extracts_beside_existing_entries_but_never_overwrites(tmp_path):
    target = tmp_path / "out"
    (target / "other").mkdir(parents=True)
    safe_extract(make_zip(tmp_path / "a.zip", {"new/x.txt": b"1"}), target)
    assert (target / "new/x.txt").read_bytes() == b"1" and (target / "other").is_dir()
    with pytest.raises(DataError, match="already exists"):
        safe_extract(make_zip(tmp_path / "b.zip", {"new/x.txt": b"2"}), target)
    assert (target / "new/x.txt").read_bytes() == b"1"
    assert leftovers(tmp_path) == ["a.zip", "b.zip", "out"]


# ---------------------------------------------------------------- download_archive


def test_file_url_download(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"z" * 3_000_000)
    seen = []
    dest = download_archive([src.as_uri()], tmp_path / "dl" / "a.zip", expected_size=3_000_000,
                            progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == src.read_bytes()
    assert seen[0] == (0, 3_000_000) and seen[-1] == (3_000_000, 3_000_000)
    assert leftovers(dest.parent) == ["a.zip", "a.zip.lock"]


def test_refuses_archive_of_wrong_size(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"z" * 1234)
    dest = tmp_path / "dl" / ARCHIVE_NAME
    with pytest.raises(DataError, match=r"got 1,234 bytes.*expected 68,606,236"):
        download_archive([src.as_uri()], dest, expected_size=ARCHIVE_SIZE)
    assert not dest.exists() and not dest.with_name(ARCHIVE_NAME + ".part").exists()


def test_refuses_download_longer_than_expected(tmp_path):
    """A server that sends more than announced is stopped at the expected size."""
    class Endless(_QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()  # no Content-Length: stream until we hang up
            with contextlib.suppress(OSError):
                for _ in range(100):
                    self.wfile.write(b"y" * 10_000)

    dest = tmp_path / "a.zip"
    with serve(tmp_path, Endless) as base:
        with pytest.raises(DataError, match=r"got more than 50,000 bytes, expected 50,000"):
            download_archive([f"{base}/a.zip"], dest, expected_size=50_000)
    assert leftovers(tmp_path) == ["a.zip.lock"]


def test_partial_download_is_not_taken_for_complete(tmp_path):
    """The server promises the full size, sends half, and hangs up: no archive appears,
    and the half is deleted rather than left under a name a later run could trust."""
    class Truncating(_QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 50_000)
            self.close_connection = True

    dest = tmp_path / "dl" / "a.zip"
    with serve(tmp_path, Truncating) as base:
        with pytest.raises(DataError, match=r"a\.zip.*127\.0\.0\.1"):
            download_archive([f"{base}/a.zip"], dest, expected_size=100_000, timeout=5)
    assert leftovers(dest.parent) == ["a.zip.lock"]


def test_leftover_part_file_is_discarded_and_restarted(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"good" * 1000)
    dest = tmp_path / "a.zip"
    part = tmp_path / "a.zip.part"
    part.write_bytes(b"junk from a killed run" * 500)  # larger than the real file
    download_archive([src.as_uri()], dest, expected_size=4000)
    assert dest.read_bytes() == b"good" * 1000 and not part.exists()


def test_complete_archive_already_there_is_reused_offline(tmp_path):
    dest = tmp_path / "a.zip"
    dest.write_bytes(b"q" * 500)
    assert download_archive([closed_port_url()], dest, expected_size=500) == dest


def test_archive_of_wrong_size_already_there_is_downloaded_again(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"n" * 500)
    dest = tmp_path / "a.zip"
    dest.write_bytes(b"old, truncated")
    download_archive([src.as_uri()], dest, expected_size=500)
    assert dest.read_bytes() == b"n" * 500


def test_every_failed_mirror_is_named_in_one_line(tmp_path):
    dead = closed_port_url()
    missing = (tmp_path / "nope.zip").as_uri()
    with pytest.raises(DataError) as info:
        download_archive([dead, missing], tmp_path / "a.zip", expected_size=10)
    message = str(info.value)
    assert "\n" not in message
    assert f"{dead}: connection refused" in message and f"{missing}: no such file" in message


# ---------------------------------------------------------------- fetch_dataset


def test_downloads_extracts_and_fingerprints_from_localhost_server(tmp_path, tiny_zip):
    """End to end, as on a fresh machine: the first mirror is dead, the second serves the
    archive; it lands in the Keras >= 3.6 cache layout and passes the layout check."""
    cache = tmp_path / "keras"
    with serve(tiny_zip.parent) as base:
        root = fetch_dataset(cache, urls=[closed_port_url(), f"{base}/{tiny_zip.name}"],
                             expected_size=tiny_zip.stat().st_size)
    assert root == cache / "datasets" / KERAS_EXTRACTED_DIR / DATASET_NAME
    assert (cache / "datasets" / ARCHIVE_NAME).read_bytes() == tiny_zip.read_bytes()
    info = scan_dataset(root)
    assert info.counts() == {"train": {"cats": 10, "dogs": 10},
                             "validation": {"cats": 5, "dogs": 5}}
    assert len(info.fingerprint) == 64 and not info.fingerprint_known
    assert leftovers(cache / "datasets" / KERAS_EXTRACTED_DIR) == [DATASET_NAME]
    # A second call is served from the cache: no network needed.
    assert fetch_dataset(cache, urls=[closed_port_url()], expected_size=1) == root


def test_fetch_refuses_archive_without_dataset_folder(tmp_path):
    src = make_zip(tmp_path / "other.zip", {"something/else.txt": b"1"})
    with pytest.raises(DataError, match=rf"no {DATASET_NAME}/ folder.*downloads it again"):
        fetch_dataset(tmp_path / "keras", urls=[src.as_uri()], expected_size=src.stat().st_size)
    assert not (tmp_path / "keras/datasets" / KERAS_EXTRACTED_DIR).exists()
    assert not (tmp_path / "keras/datasets" / ARCHIVE_NAME).exists()  # not reused next time


# ---------------------------------------------------------------- locate_dataset


def test_keras_cache_layouts_are_found(tmp_path):
    env = {"KERAS_HOME": str(tmp_path)}
    old, new = candidate_dirs(env)
    assert old == tmp_path / "datasets" / DATASET_NAME
    assert new == tmp_path / "datasets" / KERAS_EXTRACTED_DIR / DATASET_NAME
    new.mkdir(parents=True)
    assert locate_dataset(environ=env, download=False) == new
    old.mkdir(parents=True)  # both present: the older layout is listed first
    assert locate_dataset(environ=env, download=False) == old


def test_keras_home_defaults_to_dot_keras_in_home(tmp_path):
    assert keras_cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".keras"
    assert keras_cache_dir({"KERAS_HOME": str(tmp_path / "k")}) == tmp_path / "k"


def test_explicit_dir_beats_environment_and_cache(tmp_path):
    explicit, from_env = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir()
    from_env.mkdir()
    (tmp_path / "datasets" / DATASET_NAME).mkdir(parents=True)
    env = {"KERAS_HOME": str(tmp_path), "CATSDOGS_DATA": str(from_env)}
    assert locate_dataset(explicit, environ=env) == explicit
    assert locate_dataset(environ=env) == from_env
    assert locate_dataset(environ={"KERAS_HOME": str(tmp_path),
                                   "CATSDOGS_DATA_DIR": str(from_env)}) == from_env


def test_folder_above_the_dataset_is_accepted(tmp_path):
    """Pointing at Keras' `cats_and_dogs_extracted` instead of the folder inside it."""
    (tmp_path / DATASET_NAME / "train").mkdir(parents=True)
    assert locate_dataset(tmp_path, environ={}) == tmp_path / DATASET_NAME


def test_missing_explicit_data_dir_is_named(tmp_path):
    with pytest.raises(DataError, match=r"--data-dir .*nowhere': no such folder"):
        locate_dataset(tmp_path / "nowhere", environ={})
    with pytest.raises(DataError, match=r"\$CATSDOGS_DATA .*nowhere': no such folder"):
        locate_dataset(environ={"CATSDOGS_DATA": str(tmp_path / "nowhere")})


def test_no_data_no_network_is_one_clear_error(tmp_path):
    dead = [closed_port_url(), closed_port_url()]
    with pytest.raises(DataError) as info:
        locate_dataset(environ={"KERAS_HOME": str(tmp_path)}, urls=dead, expected_size=10)
    message = str(info.value)
    assert "\n" not in message
    for path in candidate_dirs({"KERAS_HOME": str(tmp_path)}):
        assert str(path) in message
    for url in dead:
        assert f"{url}: connection refused" in message
    assert message.endswith("pass --data-dir DIR (or CATSDOGS_DATA) or use --synthetic")
    # Nothing half-made is left in the cache to be mistaken for data later.
    assert not (tmp_path / "datasets" / KERAS_EXTRACTED_DIR).exists()
    assert not (tmp_path / "datasets" / ARCHIVE_NAME).exists()


def test_download_off_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="downloading is off.*--synthetic"):
        locate_dataset(environ={"KERAS_HOME": str(tmp_path)}, download=False)


def test_locate_downloads_into_keras_cache_when_nothing_is_local(tmp_path, tiny_zip):
    env = {"KERAS_HOME": str(tmp_path / "k")}
    root = locate_dataset(environ=env, urls=[tiny_zip.as_uri()],
                          expected_size=tiny_zip.stat().st_size)
    assert root == candidate_dirs(env)[1] and (root / "train/cats/cat.0.jpg").is_file()
    assert locate_dataset(environ=env, download=False) == root


def test_official_urls_and_size_are_pinned():
    assert ARCHIVE_URLS[0].startswith("https://storage.googleapis.com/")
    assert all(url.endswith("/" + ARCHIVE_NAME) for url in ARCHIVE_URLS)
    assert ARCHIVE_SIZE == 68_606_236


def test_fetch_module_does_not_import_tensorflow():
    """`catsdogs data` must answer in a blink; importing TensorFlow costs seconds."""
    import subprocess
    import sys

    code = ("import sys, catsdogs.dataset.fetch, catsdogs.dataset.synthetic; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1],
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.stdout.strip() == "False"

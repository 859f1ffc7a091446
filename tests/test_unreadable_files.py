"""The fingerprint covers exactly the files training reads, and files that cannot be read
are named, never hashed by blocking on them and never a traceback.

Everything here uses the real thing: real symbolic links (dangling, as git-annex and DVC
checkouts leave them, and looping), a real FIFO, a file name that is not UTF-8, a file
the user cannot read (as root: root without the capabilities that bypass permission
bits, so it works from any clone), and the real dataset, linked file by file into a tree
to which images are added.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_bad_inputs import (  # noqa: F401 - cli and no_tensorflow are fixtures
    catsdogs,
    cli,
    error_line,
    make_dataset,
    no_tensorflow,
    read_rows,
    run_args,
    snapshot,
)

from catsdogs.dataset.pipeline import partition
from catsdogs.dataset.scan import KNOWN_FINGERPRINT, manifest, scan_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_tf(request) -> Path:
    """test_bad_inputs' stand-in tensorflow package that fails when imported."""
    return request.getfixturevalue("no_tensorflow")


@pytest.fixture
def run_cli(request):
    """test_bad_inputs' in-process `catsdogs` (TensorFlow loaded already)."""
    return request.getfixturevalue("cli")


@pytest.fixture
def dataset(tmp_path, real_data_dir) -> Path:
    return make_dataset(real_data_dir, tmp_path / "data" / "cats_and_dogs_filtered", 5)


# ---------------------------------------------------------------- what training reads


@pytest.fixture(scope="module")
def official_tree(tmp_path_factory, real_data_dir) -> Path:
    """The real dataset, one symbolic link per file (same bytes, no copy)."""
    tree = tmp_path_factory.mktemp("linked") / "cats_and_dogs_filtered"
    for image in real_data_dir.rglob("*.jpg"):
        target = tree / image.relative_to(real_data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(image)
    return tree


def _with_extras(official_tree: Path, dest: Path) -> Path:
    """A copy of the linked tree plus three images training reads: a solid red PNG, an
    upper-case .JPG and a .jpeg."""
    tree = shutil.copytree(official_tree, dest, symlinks=True)
    Image.new("RGB", (64, 64), (255, 0, 0)).save(tree / "train" / "cats" / "red.png")
    shutil.copyfile(tree / "train" / "dogs" / "dog.0.jpg", tree / "train" / "dogs" / "x.JPG")
    shutil.copyfile(tree / "validation" / "cats" / "cat.2000.jpg",
                    tree / "validation" / "cats" / "y.jpeg")
    return tree


def test_the_official_files_linked_elsewhere_are_recognised(official_tree, no_tf):
    info = scan_dataset(official_tree)
    assert info.fingerprint == KNOWN_FINGERPRINT and info.fingerprint_known and not info.changes
    out = catsdogs("data", "--data-dir", str(official_tree), block_tf=no_tf)
    assert out.returncode == 0 and "matches the official cats_and_dogs_filtered" in out.stdout


def test_three_added_images_make_it_not_official_and_are_in_training_list(official_tree,
                                                                          tmp_path,
                                                                          no_tf):
    tree = _with_extras(official_tree, tmp_path / "extra" / "cats_and_dogs_filtered")
    info = scan_dataset(tree)
    assert not info.fingerprint_known and info.changes == "3 added, 0 missing, 0 changed"
    out = catsdogs("data", "--data-dir", str(tree), block_tf=no_tf)
    assert out.returncode == 0, out.stderr
    assert "NOT the official set: 3 added, 0 missing, 0 changed" in out.stdout
    assert "matches the official" not in out.stdout
    # One list: what training reads is what the fingerprint covers.
    read = {path for pairs in partition(info.files, seed=0).values() for path, _ in pairs}
    assert {"train/cats/red.png", "train/dogs/x.JPG", "validation/cats/y.jpeg"} <= read
    assert set(info.image_paths()) == read
    listed = manifest(tree, info.image_paths())
    assert "train/cats/red.png" in listed and listed.count("\n") == 3003


def test_a_changed_and_a_missing_file_are_counted(official_tree, tmp_path):
    tree = shutil.copytree(official_tree, tmp_path / "changed", symlinks=True)
    (tree / "train" / "cats" / "cat.5.jpg").unlink()
    shutil.copyfile(tree / "train" / "cats" / "cat.6.jpg", tree / "train" / "cats" / "cat.5.jpg")
    (tree / "validation" / "dogs" / "dog.2001.jpg").unlink()
    assert scan_dataset(tree).changes == "0 added, 1 missing, 1 changed"


# ---------------------------------------------------------------- files that cannot be read


def _dangling(data: Path) -> str:
    (data / "train" / "cats" / "cat.900.jpg").symlink_to(
        "../../.git/annex/objects/SHA256E-s123--abc.jpg")
    return "train/cats/cat.900.jpg (dangling symbolic link to ../../.git/annex/objects/"


def _loop(data: Path) -> str:
    (data / "train" / "dogs" / "a.jpg").symlink_to("b.jpg")
    (data / "train" / "dogs" / "b.jpg").symlink_to("a.jpg")
    return "train/dogs/a.jpg (symbolic link loop)"


def _fifo(data: Path) -> str:
    os.mkfifo(data / "validation" / "cats" / "cat.stream.jpg")
    return "validation/cats/cat.stream.jpg (a FIFO, not a regular file)"


def _not_utf8(data: Path) -> str:
    name = os.fsencode(data / "validation" / "dogs") + b"/dog.\xff\xfe.jpg"
    with open(name, "wb") as handle:
        handle.write((data / "validation" / "dogs" / "dog.2000.jpg").read_bytes())
    return "validation/dogs/dog.\\xff\\xfe.jpg (name is not valid UTF-8)"


BAD_FILES = {"dangling symbolic link": _dangling, "symbolic link loop": _loop,
             "FIFO": _fifo, "name not UTF-8": _not_utf8}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_unreadable_image_file_is_one_line_exit_2_never_a_hang(case, dataset, tmp_path,
                                                               no_tf):
    fragment = BAD_FILES[case](dataset)
    results = tmp_path / "results"
    for argv in (["data", "--data-dir", str(dataset)], run_args(dataset, results)):
        out = catsdogs(*argv, block_tf=no_tf, timeout=60)  # a FIFO must not block
        error_line(out, "unreadable image file(s)", str(dataset), fragment,
                   "--skip-bad-images")
    assert not results.exists()  # refused before anything was created


def test_every_unreadable_file_is_named_at_once(dataset, no_tf):
    fragments = [make(dataset) for make in BAD_FILES.values()]
    out = catsdogs("data", "--data-dir", str(dataset), block_tf=no_tf, timeout=60)
    error_line(out, "5 unreadable image file(s)", *fragments)  # the loop is two links


#: Root ignores permission bits through these two capabilities; without them it is bound
#: by them like any user, while still owning (and so reading) its own checkout.
_DAC_CAPABILITIES = "-dac_override,-dac_read_search"


def _bound_by_permissions(command: list[str], probe: Path) -> list[str]:
    """`command` as a process that permission bits bind. As a user: as it is. As root:
    still root, so it reads this checkout wherever it was cloned (a mode-700 folder, as
    `mktemp -d` or root's home make it), but with the two capabilities that let root
    ignore permission bits dropped from its bounding set (setpriv). Running it as user
    nobody instead failed from such a clone: nobody cannot import the checkout. `probe`
    (a file nobody may read) proves the drop took effect; otherwise the test skips."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot drop the DAC capabilities")
    wrap = ["setpriv", f"--bounding-set={_DAC_CAPABILITIES}"]
    check = subprocess.run([*wrap, sys.executable, "-c", f"open({str(probe)!r})"],
                           capture_output=True, text=True, timeout=60, check=False)
    if "PermissionError" not in check.stderr:
        pytest.skip(f"cannot drop root's DAC capabilities here: {check.stderr[-300:]}")
    return [*wrap, *command]


def test_a_file_the_user_cannot_read_is_named(real_data_dir, tmp_path):
    """chmod 000 stops everyone but root; as root, the check runs without the capabilities
    that let root read anything, and it must import this checkout's catsdogs."""
    data = make_dataset(real_data_dir, tmp_path / "cats_and_dogs_filtered", 3)
    secret = data / "train" / "cats" / "cat.1.jpg"
    os.chmod(secret, 0)
    entry = ("import sys, catsdogs; print(catsdogs.__file__); "
             "from catsdogs.cli import main; sys.exit(main(sys.argv[1:]))")
    command = _bound_by_permissions([sys.executable, "-c", entry, "data", "--data-dir",
                                     str(data)], probe=secret)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    environ.update(PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(command, capture_output=True, text=True, env=environ,
                         timeout=120, check=False)
    assert out.stdout.startswith(str(ROOT / "catsdogs")), out.stdout  # this checkout's copy
    error_line(out, "1 unreadable image file(s)", "train/cats/cat.1.jpg (Permission denied)")


# ---------------------------------------------------------------- skipped and recorded


@pytest.mark.slow
def test_skip_bad_images_leaves_them_out_and_records_them(dataset, tmp_path, run_cli):
    fragments = [_dangling(dataset), _fifo(dataset)]
    results = tmp_path / "results"
    out = run_cli(*run_args(dataset, results, "--batch-size", "4", "--skip-bad-images"))
    assert out.returncode == 0, out.stderr[-3000:]
    (result_set,) = (results / "runs").iterdir()
    environment = json.loads((result_set / "environment.json").read_text())
    assert [item.split(" (")[0] for item in environment["skipped_images"]] == [
        "train/cats/cat.900.jpg", "validation/cats/cat.stream.jpg"]
    assert all(f.split(" (")[1] in " ".join(environment["skipped_images"])
               for f in fragments)
    (row,) = read_rows(result_set / "runs.csv")
    assert row["skipped_images"] == "2" and row["dataset_fingerprint_known"] == "false"
    assert row["dataset_changes"] == environment["dataset_changes"] != ""
    assert row["n_train"] == "10"  # the dangling link is not counted as an image read
    assert "skipping 2 unreadable image(s)" in out.stderr


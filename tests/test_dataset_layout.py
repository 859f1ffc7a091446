"""The layout check and the fingerprint: the real set must be recognised as the official
one, and every way a folder can silently change what Keras trains on must be refused."""

from __future__ import annotations

import hashlib
import shutil
import time

import pytest

from catsdogs.dataset.scan import (
    KNOWN_FINGERPRINT,
    compute_fingerprint,
    describe,
    manifest,
    scan_dataset,
)
from catsdogs.errors import DataError

# ---------------------------------------------------------------- the real dataset


@pytest.fixture(scope="module")
def real_info(real_data_dir):
    return scan_dataset(real_data_dir)


def test_real_dataset_has_official_counts(real_info):
    assert real_info.counts() == {"train": {"cats": 1000, "dogs": 1000},
                                  "validation": {"cats": 500, "dogs": 500}}
    assert real_info.non_image_files == []
    assert real_info.files["train"]["cats"][0] == "train/cats/cat.0.jpg"


def test_real_dataset_fingerprint_is_the_official_one(real_info):
    assert real_info.fingerprint == KNOWN_FINGERPRINT and real_info.fingerprint_known


def test_manifest_is_byte_identical_to_published_sha256sums(real_info, real_data_dir):
    """Same text as `find ... | LC_ALL=C sort | xargs sha256sum`, checked line for line."""
    published = (real_data_dir.parent / "cats_and_dogs_filtered.SHA256SUMS")
    if not published.is_file():
        pytest.skip(f"{published} not found")
    paths = [p for classes in real_info.files.values() for ps in classes.values() for p in ps]
    assert manifest(real_data_dir, paths) == published.read_text()


def test_real_label_message_matches_the_course(real_info):
    assert real_info.label_counts_message() == "There are 1000 dogs and 1000 cats"
    assert real_info.label_counts_message("validation") == "There are 500 dogs and 500 cats"


def test_fingerprinting_the_real_set_takes_seconds(real_data_dir):
    start = time.perf_counter()
    scan_dataset(real_data_dir)
    assert time.perf_counter() - start < 10


def test_describe_reports_counts_and_official_match(real_info):
    text = describe(real_info)
    assert str(real_info.root) in text
    assert "There are 1000 dogs and 1000 cats" in text
    assert KNOWN_FINGERPRINT in text and "matches the official" in text
    assert "Non-image files ignored: 0" in text
    assert "validation       500     500    1000" in text


# ---------------------------------------------------------------- layouts that are refused


def test_missing_dataset_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"nowhere': does not exist; expected train/"):
        scan_dataset(tmp_path / "nowhere")


def test_file_instead_of_folder_is_refused(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"data\.zip': is a file, not a folder"):
        scan_dataset(tmp_path / "data.zip")


def test_missing_train_split_is_refused(tiny_dataset):
    shutil.rmtree(tiny_dataset / "train")
    with pytest.raises(DataError, match=r"no train/ folder; expected train/ and validation/"):
        scan_dataset(tiny_dataset)


def test_missing_validation_split_is_refused(tiny_dataset):
    shutil.rmtree(tiny_dataset / "validation")
    with pytest.raises(DataError, match=r"no validation/ folder"):
        scan_dataset(tiny_dataset)


def test_missing_class_folder_is_refused(tiny_dataset):
    shutil.rmtree(tiny_dataset / "validation" / "dogs")
    with pytest.raises(DataError, match=r"validation': no dogs/ folder; expected cats/ and dogs/"):
        scan_dataset(tiny_dataset)


def test_empty_class_folder_is_refused(tiny_dataset):
    """An empty class would train a one-class model that still reports an accuracy."""
    for image in (tiny_dataset / "train" / "cats").iterdir():
        image.unlink()
    (tiny_dataset / "train" / "cats" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"train/cats': no images; expected \.bmp/"):
        scan_dataset(tiny_dataset)


def test_extra_class_folder_is_refused(tiny_dataset):
    """Keras would silently turn `birds/` into a third label."""
    (tiny_dataset / "train" / "birds").mkdir()
    with pytest.raises(DataError, match=r"train': unexpected class folder birds/.*expected only "
                                        r"cats/ and dogs/"):
        scan_dataset(tiny_dataset)


def test_refusals_are_one_line(tiny_dataset):
    (tiny_dataset / "train" / "birds").mkdir()
    with pytest.raises(DataError) as info:
        scan_dataset(tiny_dataset)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- what is tolerated


def test_non_image_files_are_ignored_but_counted(tiny_dataset):
    before = scan_dataset(tiny_dataset)
    (tiny_dataset / "train" / "cats" / "vectorize.py").write_text("print()")
    (tiny_dataset / "validation" / "dogs" / "README").write_text("x")
    (tiny_dataset / "vectorize.py").write_text("outside class folders: not reported")
    info = scan_dataset(tiny_dataset)
    assert info.counts() == before.counts()
    assert info.non_image_files == ["train/cats/vectorize.py", "validation/dogs/README"]
    assert info.fingerprint == before.fingerprint
    assert "Non-image files ignored: 2" in describe(info)


def test_hidden_files_and_folders_are_ignored(tiny_dataset):
    before = scan_dataset(tiny_dataset)
    (tiny_dataset / "train" / "cats" / ".DS_Store").write_bytes(b"\0")
    (tiny_dataset / "train" / ".ipynb_checkpoints").mkdir()  # not a third class
    info = scan_dataset(tiny_dataset)
    assert info.counts() == before.counts() and info.non_image_files == []


def test_image_extensions_are_case_insensitive_like_keras(tiny_dataset):
    shutil.copyfile(tiny_dataset / "train/dogs/dog.0.jpg", tiny_dataset / "train/dogs/DOG.X.JPG")
    shutil.copyfile(tiny_dataset / "train/dogs/dog.0.jpg", tiny_dataset / "train/dogs/d.png")
    info = scan_dataset(tiny_dataset)
    assert info.counts()["train"]["dogs"] == 5
    assert "train/dogs/DOG.X.JPG" in info.files["train"]["dogs"]


def test_nested_images_are_counted_like_keras(tiny_dataset):
    """image_dataset_from_directory walks class folders recursively."""
    nested = tiny_dataset / "train" / "cats" / "more"
    nested.mkdir()
    shutil.copyfile(tiny_dataset / "train/cats/cat.0.jpg", nested / "cat.extra.jpg")
    assert "train/cats/more/cat.extra.jpg" in scan_dataset(tiny_dataset).files["train"]["cats"]


def test_different_fingerprint_is_reported_not_raised(tiny_dataset):
    info = scan_dataset(tiny_dataset)
    assert not info.fingerprint_known and info.fingerprint != KNOWN_FINGERPRINT
    assert "NOT the official set: 0 added, 2990 missing, 0 changed" in describe(info)
    assert info.changes == "0 added, 2990 missing, 0 changed"


def test_fingerprint_changes_when_one_image_changes(tiny_dataset):
    before = scan_dataset(tiny_dataset).fingerprint
    path = tiny_dataset / "validation/cats/cat.2000.jpg"
    path.write_bytes(path.read_bytes() + b"\0")
    assert scan_dataset(tiny_dataset).fingerprint != before


def test_fingerprint_does_not_depend_on_where_the_copy_lives(tiny_dataset, tmp_path):
    moved = shutil.copytree(tiny_dataset, tmp_path / "elsewhere" / "copy")
    assert scan_dataset(moved).fingerprint == scan_dataset(tiny_dataset).fingerprint


def test_fingerprint_sorts_by_bytes_like_lc_all_c(tmp_path):
    """'B' (0x42) sorts before 'a' (0x61) in C order; every image extension training reads
    counts (d.png too), files outside the splits do not."""
    for rel, data in {"train/x/a.jpg": b"1", "train/x/B.jpg": b"2", "validation/y/c.jpg": b"3",
                      "train/x/d.png": b"4", "other/e.jpg": b"5"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    rels = ["train/x/a.jpg", "train/x/B.jpg", "validation/y/c.jpg", "train/x/d.png",
            "other/e.jpg"]
    sha = {d: hashlib.sha256(d).hexdigest() for d in (b"1", b"2", b"3", b"4")}
    expected = (f"{sha[b'2']}  train/x/B.jpg\n{sha[b'1']}  train/x/a.jpg\n"
                f"{sha[b'4']}  train/x/d.png\n{sha[b'3']}  validation/y/c.jpg\n")
    assert manifest(tmp_path, rels) == expected
    assert compute_fingerprint(tmp_path, rels) == hashlib.sha256(expected.encode()).hexdigest()

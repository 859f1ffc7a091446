"""The synthetic dataset: same layout as the real one, real JPEGs, reproducible bytes, a
class signal that survives flips and rotations, and never mistaken for the real data."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from catsdogs.dataset.scan import KNOWN_FINGERPRINT, MARKER, describe, is_synthetic, scan_dataset
from catsdogs.dataset.synthetic import ensure_synthetic, make_synthetic, synthetic_cache_dir
from catsdogs.errors import DataError

SMALL = dict(train_per_class=6, validation_per_class=4, size=(64, 64))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("synth") / "set", **SMALL)


def all_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_names_and_counts_match_the_real_set(small_set):
    info = scan_dataset(small_set)
    assert info.counts() == {"train": {"cats": 6, "dogs": 6}, "validation": {"cats": 4, "dogs": 4}}
    assert info.files["train"]["cats"][0] == "train/cats/cat.0.jpg"
    assert "validation/dogs/dog.6.jpg" in info.files["validation"]["dogs"]  # numbered on
    assert info.label_counts_message() == "There are 6 dogs and 6 cats"


def test_images_are_real_rgb_jpegs_of_the_requested_size(small_set):
    for path in sorted(small_set.rglob("*.jpg")):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            image.load()
            assert image.size == (64, 64)


def test_size_is_height_then_width_like_keras(tmp_path):
    root = make_synthetic(tmp_path / "s", train_per_class=1, validation_per_class=1,
                          size=(40, 72))
    with Image.open(root / "train/cats/cat.0.jpg") as image:
        assert image.size == (72, 40)  # Pillow reports (width, height)


def test_marker_says_synthetic_and_is_never_the_official_fingerprint(small_set):
    assert is_synthetic(small_set)
    assert "SYNTHETIC" in (small_set / MARKER).read_text()
    info = scan_dataset(small_set)
    assert info.fingerprint != KNOWN_FINGERPRINT and not info.fingerprint_known
    assert "SYNTHETIC" in describe(info)


def test_real_layout_without_marker_is_not_synthetic(tmp_path):
    assert not is_synthetic(tmp_path)


def test_same_seed_gives_same_bytes(small_set, tmp_path):
    again = make_synthetic(tmp_path / "again", **SMALL)
    assert all_bytes(again) == all_bytes(small_set)


def test_different_seed_gives_different_images(small_set, tmp_path):
    other = make_synthetic(tmp_path / "other", **SMALL, seed=1)
    assert all_bytes(other)["train/cats/cat.0.jpg"] != all_bytes(small_set)["train/cats/cat.0.jpg"]


def test_no_two_images_are_identical(small_set):
    images = [data for name, data in all_bytes(small_set).items() if name.endswith(".jpg")]
    assert len(set(images)) == len(images)


def _features(path):
    """Two cues a CNN sees whatever the flip or rotation: which colour the most saturated
    pixels lean to (warm > 0, cool < 0), and fine-scale texture energy."""
    with Image.open(path) as image:
        x = np.asarray(image, dtype=np.float32)
    red_minus_blue = x[..., 0] - x[..., 2]
    warmth = float(np.percentile(red_minus_blue, 98) - np.percentile(-red_minus_blue, 98))
    grey = x.mean(axis=2)
    texture = float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())
    return warmth, texture


def test_class_signal_survives_flips_and_rotations(tmp_path):
    """Both cues separate the classes on every image, and are unchanged by a flip or a
    90-degree turn: a small CNN has something real to learn in a couple of epochs."""
    root = make_synthetic(tmp_path / "s", train_per_class=20, validation_per_class=1,
                          size=(96, 96), seed=3)
    cats = [_features(p) for p in sorted((root / "train/cats").glob("*.jpg"))]
    dogs = [_features(p) for p in sorted((root / "train/dogs").glob("*.jpg"))]
    assert max(c[0] for c in dogs) < 0 < min(c[0] for c in cats)  # colour
    assert max(c[1] for c in cats) < min(c[1] for c in dogs)  # texture
    path = root / "train/dogs/dog.0.jpg"
    turned = tmp_path / "turned.png"
    with Image.open(path) as image:
        image.transpose(Image.Transpose.ROTATE_90).transpose(
            Image.Transpose.FLIP_LEFT_RIGHT).save(turned)
    assert _features(turned) == pytest.approx(_features(path), rel=1e-3)


def test_refuses_to_write_into_a_folder_that_is_not_synthetic(tmp_path):
    """Never sprinkle generated images into a real dataset."""
    (tmp_path / "real" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"real': not empty and has no SYNTHETIC marker"):
        make_synthetic(tmp_path / "real", **SMALL)


def test_rejects_nonsense_parameters(tmp_path):
    with pytest.raises(ValueError, match="train_per_class"):
        make_synthetic(tmp_path / "s", train_per_class=0)
    with pytest.raises(TypeError, match="unexpected arguments"):
        ensure_synthetic(tmp_path, epochs=3)


def test_ensure_synthetic_builds_once_then_reuses(tmp_path):
    first = ensure_synthetic(tmp_path, **SMALL)
    assert first == synthetic_cache_dir(tmp_path, **SMALL) and is_synthetic(first)
    assert first.name.startswith("catsdogs-synthetic-")
    stamp = (first / "train/cats/cat.0.jpg").stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, **SMALL) == first
    assert (first / "train/cats/cat.0.jpg").stat().st_mtime_ns == stamp  # not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no temp folders left


def test_different_parameters_get_different_cache_folders(tmp_path):
    assert synthetic_cache_dir(tmp_path, seed=0) != synthetic_cache_dir(tmp_path, seed=1)
    assert synthetic_cache_dir(tmp_path, size=(96, 96)) != synthetic_cache_dir(tmp_path)
    assert synthetic_cache_dir().parent.is_dir()  # default: the system temp folder


def test_ensure_synthetic_rebuilds_an_incomplete_folder(tmp_path):
    broken = synthetic_cache_dir(tmp_path, **SMALL)
    (broken / "train" / "cats").mkdir(parents=True)  # e.g. made by hand, no marker
    assert ensure_synthetic(tmp_path, **SMALL) == broken
    assert scan_dataset(broken).counts()["train"]["cats"] == 6 and is_synthetic(broken)


def test_concurrent_builders_do_not_collide(tmp_path):
    """Two workers asking at once (pytest-xdist) both get one complete, identical set."""
    results, errors = [], []

    def build():
        try:
            results.append(ensure_synthetic(tmp_path, **SMALL))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert scan_dataset(results[0]).counts()["validation"]["dogs"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [results[0].name]

"""The decoder JAX and PyTorch runs use gives TensorFlow's bytes (issue 21): real JPEGs bit for
bit, the other formats as TensorFlow converts them, bad files refused in the same words.

TensorFlow is the reference here, so these tests run where it is installed; the full
dataset is compared by `python -m catsdogs.dataset.decoder_diff` (README "Keras backends").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import copy_real_subset
from PIL import Image

from catsdogs.dataset import decode_without_tf
from catsdogs.dataset.decoder_diff import compare_decoders, difference
from catsdogs.errors import DataError

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def subset(tmp_path_factory, real_data_dir) -> Path:
    """20 real images per class and split (80 JPEGs of several sizes)."""
    return copy_real_subset(real_data_dir, tmp_path_factory.mktemp("subset") / "data",
                            {"train": 20, "validation": 20})


def test_real_jpegs_decode_to_tensorflows_bytes(subset):
    result = compare_decoders(subset)
    assert result["images"] == 80 and result["images_identical"] == 80, result
    assert result["max_abs_difference"] == 0 and result["unreadable_by_tensorflow"] == []
    assert result["decoder"].startswith("simplejpeg")


@pytest.mark.parametrize("shape", [(375, 499), (160, 160), (50, 300), (1, 1), (161, 97)])
def test_the_resize_is_tensorflows_bilinear_bit_for_bit(shape):
    """Shrinking, the same size, growing, a single pixel: float32 values equal, not close."""
    image = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = decode_without_tf.resize_bilinear(image)
    theirs = tf.image.resize(image, (160, 160), method="bilinear").numpy()
    assert ours.dtype == theirs.dtype == np.float32
    assert ours.tobytes() == theirs.tobytes()


def _formats(source: Path, folder: Path) -> dict[str, Path]:
    image = Image.open(source).convert("RGB")
    made = {"rgba.png": image.convert("RGBA"), "palette.png": image.convert("P"),
            "gray.jpg": image.convert("L"), "cmyk.jpg": image.convert("CMYK"),
            "first.gif": image, "plain.bmp": image}
    paths = {}
    for name, converted in made.items():
        converted.save(folder / name)
        paths[name] = folder / name
    return paths


def test_other_formats_become_rgb_as_tensorflow_makes_them(real_data_dir, tmp_path):
    """Lossless formats and grey JPEGs: identical. CMYK JPEGs: libjpeg-turbo's conversion
    and TensorFlow's differ by at most one level (measured; the official set has none)."""
    for name, path in _formats(real_data_dir / "train" / "cats" / "cat.1.jpg", tmp_path).items():
        theirs = tf.io.decode_image(tf.io.read_file(str(path)), channels=3,
                                    expand_animations=False).numpy()
        ours = decode_without_tf.read_rgb(str(path))
        delta = difference(theirs[None], ours[None])
        assert delta["max_abs_difference"] <= (1 if name == "cmyk.jpg" else 0), (name, delta)


def test_unreadable_files_are_all_listed_at_once(subset, tmp_path):
    good = (subset / "train" / "cats" / "cat.0.jpg").read_bytes()
    bad = {"cut.jpg": good[: len(good) // 2], "empty.jpg": b"", "page.jpg": b"<html>404</html>"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as caught:
        decode_without_tf.decode_files(tmp_path, sorted(bad))
    message = str(caught.value)
    assert message.startswith(f"3 unreadable image(s) in {tmp_path}: cut.jpg (")
    assert "empty.jpg (" in message and "page.jpg (" in message and "\n" not in message
    assert "--skip-bad-images" in message
    images, skipped = decode_without_tf.decode_files(tmp_path, sorted(bad), skip_bad=True)
    assert skipped == sorted(bad) and images.shape == (0, 160, 160, 3)

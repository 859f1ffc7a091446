"""Pictures of the dataset itself: the post's sample grid and its augmentation preview.

The only renderer that imports Keras (the preview runs the very augmentation layers
model2-model4 train with), and only when a preview is drawn; `report` imports this
module only when a dataset folder is at hand, so a report from CSVs stays TF-free. On a
machine without TensorFlow the preview runs on the Keras backend that is installed
(catsdogs.backend.choose_installed_backend) and its title names it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.errors import DataError, quoted
from catsdogs.markup import figure_text
from catsdogs.report.canvas import new_figure, save_figure

#: What each picture shows, for links and alt text.
SAMPLES = (("sample_grid", "three training dogs above three training cats"),
           ("augmentation_preview", "one training image and eight augmented versions"))


def _natural_key(path: Path) -> list[Any]:
    """dog.2.jpg before dog.10.jpg."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _first_images(folder: Path, count: int) -> list[Path]:
    from catsdogs.dataset.scan import IMAGE_EXTENSIONS

    if not folder.is_dir():
        raise DataError(f"{quoted(folder)}: no such folder; expected the cats_and_dogs_filtered "
                        "layout (train/cats, train/dogs)")
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                    key=_natural_key)
    if len(images) < count:
        raise DataError(f"{quoted(folder)}: {len(images)} image(s); expected at least {count}")
    return images[:count]


def _load_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size:
                image = image.resize((size[1], size[0]))
            return np.asarray(image)
    except OSError as exc:
        raise DataError(f"{quoted(path)}: unreadable image ({exc}); expected a JPEG, PNG, GIF "
                        "or BMP file") from None


def _dataset_note(data_dir: Path) -> str:
    from catsdogs.dataset.scan import dataset_kind

    return (" (SYNTHETIC images, not photographs)" if dataset_kind(data_dir) == "synthetic"
            else "")


def sample_grid(data_dir: Path, out: Path) -> list[Path]:
    """The post's first figure: three dogs on the top row, three cats below, from the
    training split (the first three files of each class in natural name order)."""
    data_dir = Path(data_dir)
    rows = [("dog", _first_images(data_dir / "train" / "dogs", 3)),
            ("cat", _first_images(data_dir / "train" / "cats", 3))]
    figure, axes = new_figure(7.5, 5.2, nrows=2, ncols=3)
    for r, (label, paths) in enumerate(rows):
        for c, path in enumerate(paths):
            axes[r][c].imshow(_load_rgb(path))
            axes[r][c].set_title(f"{label}: {figure_text(path.name)}", fontsize=8)
            axes[r][c].axis("off")
    figure.suptitle("training images" + _dataset_note(data_dir), fontsize=9)
    return save_figure(figure, out, "sample_grid")


def augmentation_preview(data_dir: Path, out: Path, seed: int = 0) -> list[Path]:
    """One training image and eight flipped and rotated versions of it, made by the very
    augmentation layers model2-model4 train with (RandomFlip('horizontal_and_vertical')
    and RandomRotation(0.2), seeded). Imports Keras, on TensorFlow where it is installed."""
    from catsdogs.backend import TENSORFLOW, choose_installed_backend, keras_module
    from catsdogs.constants import IMAGE_SHAPE
    from catsdogs.models import data_augmentation

    backend = choose_installed_backend()
    to_numpy = keras_module().ops.convert_to_numpy

    data_dir = Path(data_dir)
    path = _first_images(data_dir / "train" / "dogs", 1)[0]
    image = _load_rgb(path, IMAGE_SHAPE[:2]).astype("float32")
    augment = data_augmentation(seed)
    figure, axes = new_figure(6.5, 7.0, nrows=3, ncols=3)
    for i, axis in enumerate(np.ravel(axes)):
        if i == 0:
            shown, title = image, "original"
        else:  # each call draws a new flip and angle from the layers' seeded generators
            shown = to_numpy(augment(image[None], training=True))[0]
            title = f"augmented #{i}"
        axis.imshow(np.clip(shown, 0, 255).astype("uint8"))
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    figure.suptitle(f"{figure_text(path.name)}: RandomFlip + RandomRotation(0.2), seed {seed}"
                    + ("" if backend == TENSORFLOW else f" (Keras on {backend})")
                    + _dataset_note(data_dir), fontsize=9)
    return save_figure(figure, out, "augmentation_preview")

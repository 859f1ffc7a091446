"""A synthetic stand-in for cats_and_dogs_filtered, made of real JPEG files.

Why: the whole pipeline (decoding, augmentation, the four models, result rows) must be
testable on machines with no copy of the real data and no network. The images go through
the same `image_dataset_from_directory` path as the real ones, so they are JPEGs on disk
in the same `train|validation/cats|dogs` layout, with a `SYNTHETIC` marker at the root so
no result can pass them off as the real thing.

The label must be learnable by a small CNN in 1-3 epochs *through random flips and
rotations*, so it is carried by things those augmentations keep: "cats" are smooth,
low-frequency blobs in warm colours; "dogs" are fine stripes or checks in cool colours.
Position, size, shape, stripe angle, background and noise are all random, so the model
must learn colour and texture rather than memorise images. Everything is drawn from a
generator seeded per image, so the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from catsdogs.constants import CLASSES, IMAGE_SIZE, SPLITS
from catsdogs.dataset.scan import MARKER, is_synthetic
from catsdogs.errors import DataError, quoted

#: Bump when the images change, so cached sets made by older code are not reused.
GENERATOR_VERSION = 1
_JPEG_QUALITY = 90
_FILE_PREFIX = {"cats": "cat", "dogs": "dog"}


def _params(train_per_class: int, validation_per_class: int, size: tuple[int, int],
            seed: int) -> dict:
    """The parameters that determine the bytes, checked and in one canonical form."""
    for name, value in (("train_per_class", train_per_class),
                        ("validation_per_class", validation_per_class)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    height, width = (int(v) for v in size)
    if height < 8 or width < 8:
        raise ValueError(f"size: expected (height, width) of at least 8 pixels, got {size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return {"generator": GENERATOR_VERSION, "train_per_class": train_per_class,
            "validation_per_class": validation_per_class, "size": [height, width],
            "seed": seed}


def _draw(rng: np.random.Generator, cls: str, height: int, width: int) -> np.ndarray:
    """One RGB image (uint8, height x width x 3) of class `cls`."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = float(min(height, width))

    # Background: the same distribution for both classes: a muted, tinted grey with a
    # smooth gradient, never as saturated as either class's colour.
    base = rng.uniform(60, 190) + rng.uniform(-25, 25, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / scale
    image = base + rng.uniform(-25, 25, size=3) * ramp[..., None]

    # Object: a rotated ellipse with a soft edge, anywhere, of varying size and shape.
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.22, 0.42, size=2) * scale
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / rx
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / ry
    mask = np.clip((1.0 - np.sqrt(u * u + v * v)) * 6.0, 0.0, 1.0)[..., None]

    if cls == "cats":  # warm, smooth, low frequency: a few overlapping soft blobs
        colour = np.array([rng.uniform(200, 255), rng.uniform(100, 170), rng.uniform(20, 80)])
        texture = np.zeros_like(xx)
        for _ in range(3):
            by, bx = rng.uniform(0, height), rng.uniform(0, width)
            br = rng.uniform(0.15, 0.35) * scale
            texture += np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * br * br))
        texture = 0.75 + 0.35 * texture / max(float(texture.max()), 1e-6)
    else:  # cool, high frequency: stripes at any angle, or a checkerboard
        colour = np.array([rng.uniform(20, 80), rng.uniform(90, 170), rng.uniform(190, 255)])
        period = rng.uniform(4.0, 8.0)
        phi = rng.uniform(0, np.pi)
        s1 = np.sin(2 * np.pi * (np.cos(phi) * xx + np.sin(phi) * yy) / period)
        if rng.random() < 0.5:
            s2 = np.sin(2 * np.pi * (-np.sin(phi) * xx + np.cos(phi) * yy) / period)
            s1 = np.sign(s1 * s2)
        texture = 0.7 + 0.35 * s1
    obj = colour * texture[..., None]

    image = image * (1.0 - mask) + obj * mask
    image += rng.normal(0.0, 10.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_synthetic(root: Path, *, train_per_class: int = 60, validation_per_class: int = 40,
                   size: tuple[int, int] = IMAGE_SIZE, seed: int = 0) -> Path:
    """Write a synthetic dataset into `root` and return it.

    Layout and names follow the real set: `train|validation/cats|dogs/cat.N.jpg`, numbered
    on from train into validation so no name appears twice. `size` is (height, width), as
    in Keras' `image_size`. The `SYNTHETIC` marker is written last, so it also means
    "complete". Refuses a non-empty folder that is not already synthetic, so it can never
    write into a real dataset."""
    params = _params(train_per_class, validation_per_class, size, seed)
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not is_synthetic(root):
        raise DataError(f"synthetic dataset folder {quoted(root)}: not empty and has no {MARKER} "
                        f"marker; expected a new or empty folder")
    height, width = params["size"]
    per_split = {"train": train_per_class, "validation": validation_per_class}
    for split_index, split in enumerate(SPLITS):
        first = 0 if split == "train" else train_per_class
        for label, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(first, first + per_split[split]):
                rng = np.random.default_rng([seed, split_index, label, number])
                pixels = _draw(rng, cls, height, width)
                Image.fromarray(pixels, "RGB").save(
                    folder / f"{_FILE_PREFIX[cls]}.{number}.jpg", "JPEG", quality=_JPEG_QUALITY)
    (root / MARKER).write_text(
        "This dataset is SYNTHETIC: generated by catsdogs.dataset.synthetic, not photographs of "
        "cats and dogs.\n'cats' are warm smooth blobs, 'dogs' are cool striped or checked shapes.\n"
        "It exists to test the pipeline; accuracy on it says nothing about the real task.\n"
        f"params: {json.dumps(params, sort_keys=True)}\n")
    return root


def synthetic_cache_dir(base: Path | None = None, *, train_per_class: int = 60,
                        validation_per_class: int = 40, size: tuple[int, int] = IMAGE_SIZE,
                        seed: int = 0) -> Path:
    """Where `ensure_synthetic` keeps a set with these parameters: one folder per parameter
    set, named by their hash, under `base` (default: the system temp folder)."""
    params = _params(train_per_class, validation_per_class, size, seed)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    parent = Path(base) if base is not None else Path(tempfile.gettempdir())
    return parent / f"catsdogs-synthetic-{digest}"


def _complete(root: Path, params: dict) -> bool:
    """A finished set made with exactly `params` (marker written last, counts right)."""
    marker = root / MARKER
    if not marker.is_file():
        return False
    if f"params: {json.dumps(params, sort_keys=True)}" not in marker.read_text().splitlines():
        return False
    wanted = {"train": params["train_per_class"], "validation": params["validation_per_class"]}
    for split in SPLITS:
        for cls in CLASSES:
            folder = root / split / cls
            if not folder.is_dir() or len(os.listdir(folder)) != wanted[split]:
                return False
    return True


def ensure_synthetic(base: Path | None = None, **kwargs) -> Path:
    """A complete synthetic set for these parameters (see `make_synthetic`), made once and
    reused after. It is built in a temporary folder beside its final place and renamed
    there in one step, so two processes asking at once both end up with one complete set
    and a reader never sees a half-written one."""
    kwargs = _params_kwargs(kwargs)
    final = synthetic_cache_dir(base, **kwargs)
    params = _params(**kwargs)
    if _complete(final, params):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    try:
        make_synthetic(tmp, **kwargs)
        for _ in range(3):
            try:
                os.rename(tmp, final)
                return final
            except OSError:
                if _complete(final, params):  # another process finished first
                    return final
                # A broken leftover (not ours to trust): move it aside, then retry.
                stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale-", dir=final.parent))
                try:
                    os.rename(final, stale / "old")
                except FileNotFoundError:
                    pass
                shutil.rmtree(stale, ignore_errors=True)
        raise DataError(f"synthetic dataset folder {quoted(final)}: could not be put in place; "
                        f"expected a writable folder")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _params_kwargs(kwargs: dict) -> dict:
    """`ensure_synthetic`'s keyword arguments with the defaults filled in."""
    allowed = {"train_per_class": 60, "validation_per_class": 40, "size": IMAGE_SIZE, "seed": 0}
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise TypeError(f"ensure_synthetic: unexpected arguments {sorted(unknown)}; "
                        f"expected some of {sorted(allowed)}")
    return {**allowed, **kwargs}

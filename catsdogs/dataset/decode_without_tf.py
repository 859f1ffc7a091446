"""Decoding without TensorFlow: the bytes tf.io.decode_image + tf.image.resize give, by other means.

JAX and PyTorch runs (and machines with no TensorFlow at all) decode here, once per
process, into the same uint8 (N, 160, 160, 3) arrays the TensorFlow path caches. Each
step is chosen to give TensorFlow's bytes:

- JPEG: simplejpeg, i.e. libjpeg-turbo with the settings tf.io.decode_jpeg uses by default:
  the FAST integer IDCT (JDCT_IFAST, TensorFlow's default dct_method) and fancy upsampling,
  strict (a truncated file is refused, as TensorFlow refuses it). Pillow is not used for
  JPEGs: it always decodes with the accurate IDCT and offers no switch for it, which moved
  about 66% of the decoded values by up to 4-5 levels on the real dataset;
- PNG, GIF, BMP (lossless, so any decoder agrees): Pillow, `convert("RGB")` for grey,
  palette and RGBA images, a GIF's first frame;
- resizing: NOT Pillow's `resize`, which filters over a wider window when it shrinks
  (antialiasing). `resize_bilinear` computes what TensorFlow's ResizeBilinear kernel does
  (half-pixel centres, no antialiasing) in float32, in the kernel's order of operations;
  then half-to-even rounding to uint8, as the TF path does.

`python -m catsdogs.dataset.decoder_diff` measures the remaining difference against
TensorFlow over a dataset (README "Keras backends" quotes it); the decoder is recorded in
every row (`decoder`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from catsdogs.constants import IMAGE_SIZE
from catsdogs.errors import DataError, UsageError

#: (absolute path, height, width) -> uint8 HxWx3; this decoder's own once-per-process cache.
_DECODED: dict[tuple[str, int, int], np.ndarray] = {}
_CHUNK = 64  # files per progress report


#: The first bytes of every JPEG file (SOI marker): those go to simplejpeg.
_JPEG_MAGIC = b"\xff\xd8"


def require_simplejpeg() -> None:
    """simplejpeg is a dependency of catsdogs-bench; without it (a partial install) the
    JPEGs cannot be decoded as TensorFlow does, and nothing else is used in its place."""
    import importlib.util

    if importlib.util.find_spec("simplejpeg") is None:
        raise UsageError("decoding without TensorFlow: simplejpeg is not installed; expected "
                         "it installed (pip install simplejpeg; catsdogs-bench depends on it)")


def decoder_name() -> str:
    """What a row records as its decoder: the libraries and the settings that matter."""
    import PIL
    import simplejpeg

    return (f"simplejpeg {simplejpeg.__version__} (fastdct, fancy upsampling) / pillow "
            f"{PIL.__version__} + tf-bilinear in numpy")


def _axis(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the lower and upper source index and the weight of the upper,
    as TensorFlow's compute_interpolation_weights with its HalfPixelScaler (float32)."""
    scale = np.float32(in_size) / np.float32(out_size)
    where = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(where)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(where).astype(np.int64), in_size - 1)
    return lower, upper, (where - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """float32 (h, w, C) of a uint8 (H, W, C) image: TensorFlow's bilinear resize
    (tf.image.resize, antialias=False), top row then bottom row then between them."""
    height, width = size
    y_lower, y_upper, y_lerp = _axis(height, image.shape[0])
    x_lower, x_upper, x_lerp = _axis(width, image.shape[1])
    pixels = image.astype(np.float32)
    top, bottom = pixels[y_lower], pixels[y_upper]
    x_weight, y_weight = x_lerp[None, :, None], y_lerp[:, None, None]
    top_left, top_right = top[:, x_lower], top[:, x_upper]
    bottom_left, bottom_right = bottom[:, x_lower], bottom[:, x_upper]
    upper_row = top_left + (top_right - top_left) * x_weight
    lower_row = bottom_left + (bottom_right - bottom_left) * x_weight
    return upper_row + (lower_row - upper_row) * y_weight


def to_uint8(resized: np.ndarray) -> np.ndarray:
    """Round half to even (tf.round), clip to [0, 255], uint8: the cache's bytes."""
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def read_rgb(path: str) -> np.ndarray:
    """The file's pixels as uint8 (H, W, 3), as TensorFlow's decode_image(channels=3)
    gives them; OSError / ValueError for a file that cannot be read."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw:
        raise ValueError("empty file")
    if raw.startswith(_JPEG_MAGIC):
        import simplejpeg

        return simplejpeg.decode_jpeg(raw, colorspace="RGB", fastdct=True,
                                      fastupsample=False, strict=True)
    from PIL import Image

    with Image.open(path) as image:  # the path, so Pillow's reason names the file
        image.seek(0)  # a GIF's first frame, as expand_animations=False takes
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_one(path: str, size: tuple[int, int] = IMAGE_SIZE) -> tuple[np.ndarray | None, str]:
    """(uint8 image, '') or (None, why it could not be read): one bad file must not hide
    the others, so the caller lists them all."""
    try:
        return to_uint8(resize_bilinear(read_rgb(path), size)), ""
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises all three for bad files
        return None, " ".join(str(exc).split()) or type(exc).__name__


def _decode_missing(paths: list[str], size: tuple[int, int],
                    progress: Callable[[int, int], None] | None) -> dict[str, str]:
    """Decode `paths` into the cache on a thread per CPU (Pillow and NumPy release the
    GIL); returns path -> reason for the unreadable ones. The result does not depend on
    the order threads finish in: every image lands under its own path."""
    bad: dict[str, str] = {}
    workers = max(1, min(len(os.sched_getaffinity(0)), 16))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start:start + _CHUNK]
            for path, (array, reason) in zip(chunk, pool.map(lambda p: decode_one(p, size),
                                                             chunk)):
                if array is None:
                    bad[path] = reason
                else:
                    _DECODED[(path, *size)] = array
            if progress:
                progress(start + len(chunk), len(paths))
    return bad


def decode_files(root: Path, relpaths: list[str], image_size: tuple[int, int] = IMAGE_SIZE,
                 *, skip_bad: bool = False, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, list[str]]:
    """What pipeline.decode_files returns, decoded by Pillow: (uint8 (N, H, W, 3) in the
    order of `relpaths`, the unreadable files); unreadable files are one DataError
    listing them all unless `skip_bad`."""
    require_simplejpeg()
    height, width = image_size
    paths = [str((Path(root) / rel).resolve()) for rel in relpaths]
    missing = sorted({path for path in paths if (path, height, width) not in _DECODED})
    bad = _decode_missing(missing, image_size, progress) if missing else {}
    bad_rel = [rel for rel, path in zip(relpaths, paths) if path in bad]
    if bad_rel and not skip_bad:
        refuse_undecodable(root, [(rel, bad[path]) for rel, path in zip(relpaths, paths)
                                  if path in bad])
    good = [_DECODED[(path, height, width)] for path in paths if path not in bad]
    images = np.stack(good) if good else np.zeros((0, height, width, 3), np.uint8)
    return images, bad_rel


def refuse_undecodable(root: Path, bad: list[tuple[str, str]]) -> None:
    """One DataError for every (file, reason) a decoder could not read (both decoders
    say it in these words)."""
    listing = "; ".join(f"{rel} ({reason[:80]})" for rel, reason in bad)
    raise DataError(f"{len(bad)} unreadable image(s) in {root}: {listing}; expected "
                    "JPEG/PNG/GIF/BMP files: fix or remove them, or pass --skip-bad-images")


def clear_cache() -> None:
    """Forget every image this decoder decoded."""
    _DECODED.clear()

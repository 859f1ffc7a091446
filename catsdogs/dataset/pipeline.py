"""Splits and input pipelines: which files go where, decoded once, fed per epoch.

The post builds its test set with `take`/`skip` on a validation dataset that reshuffles on
every pass, so its "test" images change every epoch and overlap validation. Here the
validation FILES are partitioned once, with the run's seed, per class: 19.2% to test (192
of 1000 images, the post's 6 batches of 32) and the rest (808) to validation. Train keeps
all 2000. The partition depends only on the file list and the seed, so two runs with the
same seed see identical splits.

Decoding: every image is read, decoded (`tf.io.decode_image`, channels=3, as Keras'
`image_dataset_from_directory` does) and resized to 160x160 (bilinear) ONCE per process,
rounded to uint8 and kept in memory (about 230 MB for all 3000 images), then reused by
every epoch, variant and seed. The uncached pipeline (`cache=False`) decodes from the
files on every pass and yields exactly the same bytes; a test holds the two together.

Without TensorFlow (--backend jax or torch, whether or not TensorFlow is installed) the
same steps run without it: catsdogs.dataset.decode_without_tf decodes into the same
uint8 cache layout (the same bytes: all 3000 official images identical, measured by
catsdogs.dataset.decoder_diff), catsdogs.dataset.batches feeds it to Keras. The splits
are the same files; the shuffled order is not tf.data's (it cannot be reproduced without
TensorFlow), and every row names its decoder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from catsdogs.backend import uses_tensorflow
from catsdogs.constants import BATCH_SIZE, CLASSES, IMAGE_SIZE, SPLIT_NAMES
from catsdogs.dataset import decode_without_tf, scan
from catsdogs.errors import DataError, UsageError, quoted

TEST_FRACTION = 192 / 1000  # the post's 6 test batches of 32, out of 1000 validation images
LABELS = {cls: label for label, cls in enumerate(CLASSES)}  # as Keras assigns them

# (absolute path, height, width) -> uint8 HxWx3 array; one decode per image per process.
_DECODED: dict[tuple[str, int, int], np.ndarray] = {}
DECODE_BATCH = 64  # files per batch of the one-time decode (and per progress report)


@dataclasses.dataclass
class Splits:
    """What a training run consumes: three datasets of (uint8 images, int32 labels)
    and the provenance of the files behind them."""

    train: Any
    validation: Any
    test: Any
    files: dict[str, list[str]]  # split -> paths relative to data_dir
    labels: dict[str, list[int]]
    data_dir: Path
    dataset: str  # "real", "synthetic" or "derived"
    fingerprint: str
    fingerprint_known: bool
    skipped: list[str]  # unreadable images left out under --skip-bad-images
    dataset_changes: str  # against the official manifest; "" when official
    non_image_files: list[str]
    seed: int
    limit: int | None

    def count(self, split: str) -> int:
        return len(self.files[split])


# ---------------------------------------------------------------- which file goes where


def _stable_order(paths: list[str]) -> list[str]:
    """A fixed, seed-independent order that does not favour low file numbers: --limit
    takes a prefix of it, so limited runs use the same images whatever the seed."""
    return sorted(paths, key=lambda p: hashlib.sha256(p.encode()).hexdigest())


def check_limit(limit: int | None, counts: dict[str, dict[str, int]]) -> None:
    """--limit may not exceed the smallest class folder: a limit that silently took
    fewer images than asked would mislabel a run."""
    if limit is None:
        return
    smallest = min((n, f"{split}/{cls}") for split, per in counts.items()
                   for cls, n in per.items())
    if limit > smallest[0]:
        raise UsageError(f"--limit: {limit} is larger than the smallest class folder "
                         f"({smallest[1]} has {smallest[0]} images); expected at most "
                         f"{smallest[0]}")


def partition(files: dict[str, dict[str, list[str]]], *, seed: int,
              limit: int | None = None) -> dict[str, list[tuple[str, int]]]:
    """Split -> [(relative path, label)]: train from `train/`, validation and test a
    seeded, stratified, disjoint partition of `validation/`. With `limit`, at most that
    many images per class per split."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed: expected a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, int]]] = {name: [] for name in SPLIT_NAMES}
    for cls, label in LABELS.items():
        train = _stable_order(files["train"][cls])
        pool = sorted(files["validation"][cls])
        pool = [pool[i] for i in rng.permutation(len(pool))]
        n_test = max(1, round(len(pool) * TEST_FRACTION))
        chosen = {"train": train, "test": pool[:n_test], "validation": pool[n_test:]}
        for split, paths in chosen.items():
            if limit is not None:
                paths = paths[:limit]
            out[split] += [(path, label) for path in paths]
    return out


# ---------------------------------------------------------------- decoding


def _decode_fn(image_size: tuple[int, int]):
    """Read, decode and resize one file as Keras does, then round to uint8 so the cache
    holds 1 byte per channel (the only deviation from the post: < 0.5/255 per pixel)."""
    import tensorflow as tf

    def decode(path):
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        image = tf.image.resize(image, image_size, method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    return decode


def _decode_one_checked(path: str, image_size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Decode one file; (None, reason) when TensorFlow cannot, so the caller can list
    every bad file at once instead of dying on the first."""
    import tensorflow as tf

    try:
        return _decode_fn(image_size)(tf.constant(path)).numpy(), ""
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
            tf.errors.UnknownError) as exc:
        return None, _op_error_reason(exc)


def _op_error_reason(exc) -> str:
    """TensorFlow's reason without its wrapping: '{{function_node __wrapped__DecodeImage_
    device_/job:...}} jpeg::Uncompress failed. ... [Op:DecodeImage] name: ' becomes
    'jpeg::Uncompress failed. ...', so a listing of bad files stays readable."""
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", exc.message or "")
    text = re.sub(r"\[Op:\w+\].*$", "", text, flags=re.S)
    return " ".join(text.split()) or type(exc).__name__


def _cache_key_paths(root: Path, relpaths: list[str]) -> list[str]:
    """Absolute paths of `relpaths` under `root`, the keys of the decode cache: the root
    is resolved once (a relative or symlinked --data-dir names the same files), not
    every file (resolving 3000 paths cost as much as a tenth of the decoding)."""
    base = str(Path(root).resolve())
    return [os.path.join(base, rel) for rel in relpaths]


def _decode_parallel(paths: list[str], image_size: tuple[int, int],
                     progress: Callable[[int, int], None] | None) -> np.ndarray:
    """uint8 (N, H, W, 3) of `paths`, in their order, decoded in parallel by tf.data.

    Each file carries its index, so the map may finish files out of order (one large
    JPEG no longer holds back those behind it) and each batch is written straight into
    its rows of one array: no list of batches, no concatenation, no second copy. Threads:
    two per usable CPU, from the start (AUTOTUNE ramps up over a pass as short as this;
    one per CPU left the cores waiting on file reads: 2,190 and 1,555 images/s against
    2,769 and 2,922 with two, the post's first pass 2,711 and 2,795, over the 2,000
    training images on the idle 2-CPU AVX-512 machine). The bytes are those of the serial
    path (a test compares them)."""
    import tensorflow as tf

    from catsdogs.training.machine import usable_cpus

    height, width = image_size
    decode = _decode_fn(image_size)
    out = np.empty((len(paths), height, width, 3), np.uint8)
    dataset = (tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
               .map(lambda index, path: (index, decode(path)),
                    num_parallel_calls=2 * max(1, len(usable_cpus())), deterministic=False)
               .batch(DECODE_BATCH).prefetch(1))
    done = 0
    for indices, images in dataset:
        out[indices.numpy()] = np.asarray(images)
        done += int(indices.shape[0])
        if progress:
            progress(done, len(paths))
    return out


def decode_files(root: Path, relpaths: list[str], image_size: tuple[int, int] = IMAGE_SIZE,
                 *, skip_bad: bool = False, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, list[str]]:
    """uint8 array (N, H, W, 3) of the files in order, decoding only those not yet in the
    process cache, in parallel. Returns (images, unreadable files); unreadable files are
    an error unless `skip_bad`, in which case they are left out of the array.
    `progress(done, total)` hears of every batch decoded: the first pass over 3000 JPEGs
    takes a while on a small CPU, and a silent wait looks like a hang. The array returned
    may be the cache's own, so it is read-only. Without TensorFlow as the backend,
    catsdogs.dataset.decode_without_tf decodes."""
    if not uses_tensorflow():
        return decode_without_tf.decode_files(root, relpaths, image_size, skip_bad=skip_bad,
                                              progress=progress)
    import tensorflow as tf

    height, width = image_size
    paths = _cache_key_paths(root, relpaths)
    missing = list(dict.fromkeys(path for path in paths if (path, height, width) not in _DECODED))
    bad: dict[str, str] = {}
    fresh = None
    if missing:
        try:
            fresh = _decode_parallel(missing, image_size, progress)
            fresh.flags.writeable = False
            for path, array in zip(missing, fresh):
                _DECODED[(path, height, width)] = array
        except tf.errors.OpError:
            for path in missing:  # slow path: find every culprit, keep every good image
                array, reason = _decode_one_checked(path, image_size)
                if array is None:
                    bad[path] = reason
                else:
                    array.flags.writeable = False
                    _DECODED[(path, height, width)] = array
    bad_rel = [rel for rel, path in zip(relpaths, paths) if path in bad]
    if bad_rel and not skip_bad:
        decode_without_tf.refuse_undecodable(root, [(rel, bad[path]) for rel, path
                                                    in zip(relpaths, paths) if path in bad])
    if fresh is not None and missing == paths:
        return fresh, bad_rel  # every file new and once, in order: the array is the answer
    good = [_DECODED[(path, height, width)] for path in paths if path not in bad]
    images = np.stack(good) if good else np.zeros((0, height, width, 3), np.uint8)
    return images, bad_rel


def check_images(root: Path, info, seeds, limit: int | None = None, *,
                 skip_bad: bool = False, image_size: tuple[int, int] = IMAGE_SIZE,
                 progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Decode, before any training, every image the given seeds will use (into the process
    cache, so the runs do not decode them again). Unreadable files are one DataError listing
    them all, or, with `skip_bad`, returned (relative paths) so the session records them."""
    chosen = [partition(info.files, seed=seed, limit=limit) for seed in seeds]
    wanted = sorted({path for splits in chosen for pairs in splits.values()
                     for path, _ in pairs})
    _, bad = decode_files(Path(root), wanted, image_size, skip_bad=skip_bad, progress=progress)
    for splits in chosen if bad else ():
        for split, pairs in splits.items():
            if not set(path for path, _ in pairs) - set(bad):
                raise DataError(f"{quoted(root)}: no readable images left in the {split} split; "
                                "expected at least one per split")
    return bad


def clear_decode_cache() -> None:
    """Forget every decoded image (the speed benchmark times a cold first pass)."""
    _DECODED.clear()
    decode_without_tf.clear_cache()


def decoder_name() -> str:
    """The decoder this process uses, as rows record it (`decoder`)."""
    if not uses_tensorflow():
        return decode_without_tf.decoder_name()
    import tensorflow as tf

    return f"tf.io.decode_image + tf.image.resize bilinear (TensorFlow {tf.__version__})"


def split_batches(images: np.ndarray, labels: list[int], *, batch_size: int,
                  shuffle_seed: int | None):
    """The cached batches of one split on this process's backend: tf.data on
    TensorFlow, a Keras PyDataset of NumPy batches elsewhere (no TensorFlow needed)."""
    if uses_tensorflow():
        return cached_dataset(images, labels, batch_size=batch_size, shuffle_seed=shuffle_seed)
    from catsdogs.dataset.batches import array_batches

    return array_batches(images, labels, batch_size=batch_size, shuffle_seed=shuffle_seed)


# ---------------------------------------------------------------- tf.data pipelines


def _batched(indices_count: int, take_fn, *, batch_size: int, shuffle_seed: int | None,
             take_batches: bool = False):
    """Index dataset -> (optionally shuffled each epoch) -> examples -> uint8 batches.
    Both pipelines go through here, so they shuffle identically for the same seed.
    Batches stay uint8: the model's input layer casts them to float32 on its device, so
    the pipeline moves a quarter of the bytes (and on a GPU, so does the host copy).
    `take_batches`: take_fn gets a batch of indices (one gather per batch from arrays in
    memory, twice the images/s of one per image) instead of one index (per-file decoding)."""
    import tensorflow as tf

    parallel = {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}
    dataset = tf.data.Dataset.range(indices_count)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(max(indices_count, 1), seed=shuffle_seed,
                                  reshuffle_each_iteration=True)
    if take_batches:
        dataset = dataset.batch(batch_size).map(take_fn, **parallel)
    else:
        dataset = dataset.map(take_fn, **parallel).batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def cached_dataset(images: np.ndarray, labels: list[int], *, batch_size: int,
                   shuffle_seed: int | None):
    """Batches gathered from decoded uint8 arrays held in memory."""
    import tensorflow as tf

    images_t = tf.constant(images)
    labels_t = tf.constant(np.asarray(labels, np.int32))
    return _batched(len(labels), lambda i: (tf.gather(images_t, i), tf.gather(labels_t, i)),
                    batch_size=batch_size, shuffle_seed=shuffle_seed, take_batches=True)


def file_dataset(root: Path, relpaths: list[str], labels: list[int], *, batch_size: int,
                 shuffle_seed: int | None, image_size: tuple[int, int] = IMAGE_SIZE):
    """Batches decoded from the files on every pass (what the post's pipeline does)."""
    import tensorflow as tf

    paths_t = tf.constant([str((root / rel).resolve()) for rel in relpaths])
    labels_t = tf.constant(np.asarray(labels, np.int32))
    decode = _decode_fn(image_size)
    return _batched(len(labels), lambda i: (decode(tf.gather(paths_t, i)),
                                            tf.gather(labels_t, i)),
                    batch_size=batch_size, shuffle_seed=shuffle_seed)


# ---------------------------------------------------------------- the public entry point


def load_splits(data_dir, *, seed: int = 0, limit: int | None = None,
                batch_size: int = BATCH_SIZE, image_size: tuple[int, int] = IMAGE_SIZE,
                cache: bool = True, skip_bad_images: bool = False, info=None) -> Splits:
    """Train/validation/test datasets for one seed, from a cats_and_dogs_filtered folder.

    Train is reshuffled every epoch with `seed`; validation and test are in a fixed order.
    `info` (a scan.DatasetInfo) skips re-scanning when the caller already has it."""
    root = Path(data_dir)
    info = info if info is not None else scan.scan_dataset(root, skip_bad=skip_bad_images)
    check_limit(limit, info.counts())
    chosen = partition(info.files, seed=seed, limit=limit)
    if uses_tensorflow():
        import tensorflow as tf

        # tf.data derives the shuffle order from (global seed, op seed): pin both, so the
        # order depends on `seed` alone, not on whatever ran earlier in this process. A
        # dataset keeps its reshuffle state, so each run needs its own load_splits call.
        tf.random.set_seed(seed)
    elif not cache:
        raise UsageError("cache=False (decoding every pass) is a tf.data pipeline; expected "
                         "cache=True without TensorFlow as the backend")
    # Unreadable files the scan left out (--skip-bad-images) are skipped for every run.
    skipped: list[str] = list(info.bad_files)
    datasets: dict[str, Any] = {}
    files: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    for split in SPLIT_NAMES:
        paths = [path for path, _ in chosen[split]]
        split_labels = [label for _, label in chosen[split]]
        images, bad = (decode_files(root, paths, image_size, skip_bad=skip_bad_images)
                       if cache else (None, []))
        if bad:
            skipped += bad
            keep = [i for i, path in enumerate(paths) if path not in set(bad)]
            paths = [paths[i] for i in keep]
            split_labels = [split_labels[i] for i in keep]
        if not paths:
            raise DataError(f"{quoted(root)}: no readable images left in the {split} split; "
                            "expected at least one per split")
        shuffle_seed = seed if split == "train" else None
        if cache:
            datasets[split] = split_batches(images, split_labels, batch_size=batch_size,
                                            shuffle_seed=shuffle_seed)
        else:
            datasets[split] = file_dataset(root, paths, split_labels, batch_size=batch_size,
                                           shuffle_seed=shuffle_seed, image_size=image_size)
        files[split], labels[split] = paths, split_labels
    return Splits(train=datasets["train"], validation=datasets["validation"],
                  test=datasets["test"], files=files, labels=labels, data_dir=root,
                  dataset=scan.dataset_kind(root),
                  fingerprint=info.fingerprint, fingerprint_known=info.fingerprint_known,
                  skipped=skipped, dataset_changes=info.changes,
                  non_image_files=list(info.non_image_files), seed=seed, limit=limit)

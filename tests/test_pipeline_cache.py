"""The decode cache: images are decoded once per process and the cached pipeline feeds
training exactly the bytes the uncached one (decoding from the files every pass) would,
in the same order, epoch after epoch. Real images, --limit 20 per class per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catsdogs.dataset import pipeline
from catsdogs.dataset.pipeline import clear_decode_cache, load_splits
from catsdogs.dataset.scan import scan_dataset

LIMIT = 20  # images per class per split: 40 train (2 batches), 40 validation, 40 test


@pytest.fixture(scope="module")
def real_info(real_data_dir):
    return scan_dataset(real_data_dir)


def _passes(dataset, count: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """`count` full passes over a dataset, as (images, labels) NumPy batches."""
    return [[(images.numpy(), labels.numpy()) for images, labels in dataset]
            for _ in range(count)]


def _assert_same_batches(left, right) -> None:
    assert len(left) == len(right)
    for (images_l, labels_l), (images_r, labels_r) in zip(left, right):
        assert images_l.dtype == images_r.dtype == np.uint8
        assert images_l.shape == images_r.shape
        assert np.array_equal(labels_l, labels_r)
        assert images_l.tobytes() == images_r.tobytes()  # bit for bit, not approximately


def test_cached_pipeline_yields_the_uncached_bytes_over_two_epochs(real_data_dir, real_info):
    uncached = load_splits(real_data_dir, seed=7, limit=LIMIT, info=real_info, cache=False)
    cached = load_splits(real_data_dir, seed=7, limit=LIMIT, info=real_info, cache=True)
    assert cached.files == uncached.files and cached.labels == uncached.labels

    cached_epochs, uncached_epochs = _passes(cached.train, 2), _passes(uncached.train, 2)
    for epoch_cached, epoch_uncached in zip(cached_epochs, uncached_epochs):
        _assert_same_batches(epoch_cached, epoch_uncached)
    # Train is reshuffled between epochs (identically in both pipelines, checked above).
    first, second = (np.concatenate([labels for _, labels in epoch]) for epoch in cached_epochs)
    first_images = np.concatenate([images for images, _ in cached_epochs[0]])
    second_images = np.concatenate([images for images, _ in cached_epochs[1]])
    assert sorted(first.tolist()) == sorted(second.tolist()) == [0] * LIMIT + [1] * LIMIT
    assert not np.array_equal(first_images, second_images)
    # Validation and test are in a fixed order, also identical.
    for split in ("validation", "test"):
        _assert_same_batches(_passes(getattr(cached, split), 1)[0],
                             _passes(getattr(uncached, split), 1)[0])


def test_same_seed_same_files_and_different_seed_different_test_partition(real_data_dir,
                                                                          real_info):
    first = load_splits(real_data_dir, seed=0, limit=LIMIT, info=real_info)
    again = load_splits(real_data_dir, seed=0, limit=LIMIT, info=real_info)
    other = load_splits(real_data_dir, seed=1, limit=LIMIT, info=real_info)
    assert first.files == again.files and first.labels == again.labels
    assert set(first.files["test"]) != set(other.files["test"])
    assert first.files["train"] == other.files["train"]  # --limit takes the same train images
    for splits in (first, other):
        assert not set(splits.files["test"]) & set(splits.files["validation"])


def test_each_image_is_decoded_once_per_process(real_data_dir, real_info):
    clear_decode_cache()
    load_splits(real_data_dir, seed=0, limit=LIMIT, info=real_info)
    assert len(pipeline._DECODED) == 3 * 2 * LIMIT  # 3 splits x 2 classes
    arrays = dict(pipeline._DECODED)

    load_splits(real_data_dir, seed=0, limit=LIMIT, info=real_info)  # another variant
    assert len(pipeline._DECODED) == len(arrays)
    assert all(pipeline._DECODED[key] is array for key, array in arrays.items())

    other = load_splits(real_data_dir, seed=1, limit=LIMIT, info=real_info)  # another seed
    used = {(str((real_data_dir / path).resolve()), 160, 160)
            for paths in other.files.values() for path in paths}
    assert set(pipeline._DECODED) == set(arrays) | used  # only the files new to seed 1
    assert all(pipeline._DECODED[key] is array for key, array in arrays.items())


def test_post_pipeline_under_limit_reads_exactly_our_files(real_data_dir, real_info, tmp_path):
    """`catsdogs speed --limit N` times the post's image_dataset_from_directory on a folder
    of links to the files our pipeline uses, so both read the same images."""
    from catsdogs.training.speed import link_post_layout, post_dataset

    splits = load_splits(real_data_dir, seed=0, limit=LIMIT, info=real_info)
    layout = link_post_layout(real_data_dir, splits.files, tmp_path / "post")
    for split in ("train", "validation"):
        dataset = post_dataset(layout / split, batch_size=32)
        read = sorted(str(Path(path).resolve()) for path in dataset.file_paths)
        assert read == sorted(str((real_data_dir / rel).resolve())
                              for rel in splits.files[split])
        labels = np.concatenate([y.numpy() for _, y in dataset])
        assert sorted(labels.tolist()) == sorted(splits.labels[split])


def test_the_parallel_decode_gives_the_serial_paths_bytes_in_the_asked_order(real_data_dir,
                                                                            real_info):
    """decode_files decodes in parallel and out of order (each file carries its index):
    every image must be byte for byte what decoding that file alone gives, in the order
    asked, with repeats, whether new or from the cache."""
    chosen = pipeline.partition(real_info.files, seed=3, limit=LIMIT)
    rel = [path for pairs in chosen.values() for path, _ in pairs]
    serial = np.stack([pipeline._decode_one_checked(str(real_data_dir.resolve() / path),
                                                    pipeline.IMAGE_SIZE)[0] for path in rel])
    clear_decode_cache()
    fresh, bad = pipeline.decode_files(real_data_dir, rel)
    assert bad == [] and fresh.dtype == np.uint8 and fresh.tobytes() == serial.tobytes()
    assert not fresh.flags.writeable  # the cache's own arrays: nobody may change them
    half, again = rel[: len(rel) // 2], rel[::-1] + rel[:3]  # some cached, some repeated
    clear_decode_cache()
    pipeline.decode_files(real_data_dir, half)
    mixed, _ = pipeline.decode_files(real_data_dir, again)
    assert mixed.tobytes() == np.concatenate([serial[::-1], serial[:3]]).tobytes()

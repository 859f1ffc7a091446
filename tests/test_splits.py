"""Splits: the test set is a fixed, disjoint partition of the validation files (the post's
take/skip test set changed every epoch and overlapped validation)."""

from __future__ import annotations

import numpy as np
import pytest

from catsdogs.dataset.pipeline import load_splits, partition
from catsdogs.dataset.scan import scan_dataset
from catsdogs.errors import UsageError


@pytest.fixture(scope="module")
def real_info(real_data_dir):
    return scan_dataset(real_data_dir)


def test_full_partition_sizes_and_labels(real_info):
    parts = partition(real_info.files, seed=0)
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [2000, 808, 192]
    for split in parts:
        labels = [label for _, label in parts[split]]
        assert labels.count(0) == labels.count(1)  # stratified: cats = dogs
        assert all((label == 0) == ("/cats/" in path) for path, label in parts[split])


def test_test_and_validation_are_disjoint_and_cover_validation_folder(real_info):
    parts = partition(real_info.files, seed=3)
    test = {p for p, _ in parts["test"]}
    val = {p for p, _ in parts["validation"]}
    assert not test & val
    assert test | val == {p for cls in real_info.files["validation"].values() for p in cls}
    assert all(p.startswith("train/") for p, _ in parts["train"])


def test_same_seed_same_split_different_seed_different_split(real_info):
    assert partition(real_info.files, seed=7) == partition(real_info.files, seed=7)
    assert partition(real_info.files, seed=7)["test"] != partition(real_info.files, seed=8)["test"]


def test_limit_takes_n_per_class_per_split_independent_of_seed(real_info):
    a = partition(real_info.files, seed=0, limit=20)
    b = partition(real_info.files, seed=1, limit=20)
    assert [len(a[s]) for s in ("train", "validation", "test")] == [40, 40, 40]
    assert a["train"] == b["train"]


def test_limit_larger_than_a_class_is_refused(real_data_dir, real_info):
    with pytest.raises(UsageError, match="--limit: 501 is larger than the smallest class"):
        load_splits(real_data_dir, limit=501, info=real_info)


def test_negative_seed_is_refused(real_info):
    with pytest.raises(UsageError, match="seed"):
        partition(real_info.files, seed=-1)


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_splits_are_stable_across_two_passes_and_two_loads(real_data_dir, real_info):
    """Validation/test batches are identical on every pass; a second load_splits with the
    same seed gives the same files and the same batches."""
    first = load_splits(real_data_dir, seed=5, limit=12, info=real_info)
    second = load_splits(real_data_dir, seed=5, limit=12, info=real_info)
    assert first.files == second.files
    for split in ("validation", "test"):
        one, two = _batches(getattr(first, split)), _batches(getattr(first, split))
        assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                   for a, b in zip(one, two))
    assert set(first.files["test"]).isdisjoint(first.files["validation"])
    train_a, train_b = _batches(first.train), _batches(second.train)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(train_a, train_b))


def test_batches_are_160x160_rgb_uint8_with_int_labels(real_data_dir, real_info):
    splits = load_splits(real_data_dir, seed=0, limit=10, batch_size=8, info=real_info)
    images, labels = next(iter(splits.train))
    assert images.shape == (8, 160, 160, 3) and images.dtype.name == "uint8"
    assert labels.dtype.name == "int32" and set(labels.numpy()) <= {0, 1}
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 255.0
    assert splits.dataset == "real" and splits.fingerprint_known

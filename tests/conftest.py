"""Shared fixtures: the real dataset (read only, skipped where absent) and small copies of
it in tmp_path, so tests that damage a layout or zip it up never touch the real folder."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from catsdogs.constants import CLASSES, SPLITS
from catsdogs.dataset.fetch import DATASET_NAME

#: Same place locally and in CI: the shared folder next to the repository.
REAL_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/cats_and_dogs_filtered"
_PREFIX = {"cats": "cat", "dogs": "dog"}
_FIRST = {"train": 0, "validation": 2000}


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real cats_and_dogs_filtered folder. Never write into it."""
    if not (REAL_DATA_DIR / "train").is_dir():
        pytest.skip(f"real dataset not found at {REAL_DATA_DIR} (expected ../shared/data "
                    f"next to the repository)")
    return REAL_DATA_DIR


def copy_real_subset(real: Path, dest: Path, per_class: dict[str, int]) -> Path:
    """Copy the first N real images per class of each split into `dest`, same layout."""
    for split in SPLITS:
        for cls in CLASSES:
            (dest / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(_FIRST[split], _FIRST[split] + per_class[split]):
                name = f"{_PREFIX[cls]}.{i}.jpg"
                shutil.copyfile(real / split / cls / name, dest / split / cls / name)
    return dest


@pytest.fixture
def tiny_dataset(tmp_path: Path, real_data_dir: Path) -> Path:
    """A valid layout with 3 real images per class in train and 2 in validation."""
    return copy_real_subset(real_data_dir, tmp_path / "tiny" / DATASET_NAME,
                            {"train": 3, "validation": 2})


@pytest.fixture
def tiny_zip(tmp_path: Path, real_data_dir: Path) -> Path:
    """A zip laid out like the official archive (`cats_and_dogs_filtered/...` at the top)
    with 10 real images per class in train and 5 in validation."""
    src = copy_real_subset(real_data_dir, tmp_path / "zipsrc" / DATASET_NAME,
                           {"train": 10, "validation": 5})
    zip_path = tmp_path / "served" / "cats_and_dogs_filtered.zip"
    zip_path.parent.mkdir()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src.parent).as_posix())
    return zip_path

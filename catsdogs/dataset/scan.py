"""Check the dataset layout and fingerprint exactly the image files training reads.

Why this module exists: every result row says which data it was trained on. The list of
image files `scan_dataset` returns is the one list training reads (pipeline.py partitions it)
and the one list the fingerprint covers, so a file training reads can never escape the
fingerprint (every extension Keras reads, in any case). "Official" means that list's
manifest is the official set's, shipped as `official_manifest.sha256` and checked against
the published fingerprint; otherwise the result says how many files were added, missing
and changed. Files that cannot be read are named, never hashed by blocking on them.
No TensorFlow here: `catsdogs data` and the checks before training stay fast.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable

from catsdogs.constants import CLASSES, SPLITS
from catsdogs.errors import DataError, quoted
from catsdogs.fsutil import file_sha256, mode_kind

#: sha256 of the sorted `sha256sum` manifest of the 3000 official JPEGs (see
#: `compute_fingerprint`); a run on other data carries its own fingerprint instead.
KNOWN_FINGERPRINT = "7ecc68776f753fca008de8ee9d57ff4ad6d0550ec8c964be4c5090b0b5fb57fd"
#: The file `synthetic.make_synthetic` writes last into a generated set: its presence is
#: what makes a folder "synthetic" everywhere (rows, reports, `catsdogs data`).
MARKER = "SYNTHETIC"
#: The file `derived.make_derived` writes last into a re-encoded copy (JSON: what it was
#: made from, and how): its presence makes a folder "derived" everywhere.
DERIVED_MARKER = "DERIVED"
#: What `keras.utils.image_dataset_from_directory` reads (compared case-insensitively).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

@dataclasses.dataclass
class DatasetInfo:
    """What `scan_dataset` found: the image files training reads, per split and class
    (relative POSIX paths, sorted), files Keras would skip, files that could not be read
    (left out under --skip-bad-images), and the fingerprint of exactly the files listed."""

    root: Path
    files: dict[str, dict[str, list[str]]]
    non_image_files: list[str]
    fingerprint: str
    fingerprint_known: bool
    bad_files: list[str] = dataclasses.field(default_factory=list)  # "path (reason)"
    changes: str = ""  # against the official manifest; "" when official

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class, e.g. {"train": {"cats": 1000, "dogs": 1000}, ...}."""
        return {split: {cls: len(paths) for cls, paths in classes.items()}
                for split, classes in self.files.items()}

    def image_paths(self) -> list[str]:
        """Every image listed, in one list: what the fingerprint covers."""
        return [p for classes in self.files.values() for paths in classes.values()
                for p in paths]

    def label_counts_message(self, split: str = "train") -> str:
        """The sentence the course prints: 'There are 1000 dogs and 1000 cats'."""
        counts = self.counts()[split]
        return f"There are {counts['dogs']} dogs and {counts['cats']} cats"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def shown(rel: str) -> str:
    """A path as text that can always be printed or written: bytes that are not UTF-8
    (kept by Python as surrogates) become \\xNN escapes."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _why_unreadable(path: Path, rel: str) -> str | None:
    """Why training could not read this image file, or None if it can. Never opens
    anything but a regular file, so a FIFO cannot make the scan hang."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return f"dangling symbolic link to {shown(os.readlink(path))}"
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    kind = mode_kind(mode)
    return f"{kind}, not a regular file" if kind else "not a regular file"


def _scan_class(root: Path, class_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """Walk a class folder recursively (as Keras does, without following linked folders);
    hidden files and folders are skipped. Returns (images, other files, unreadable images
    as 'path (reason)')."""
    images: list[str] = []
    others: list[str] = []
    bad: list[str] = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fname in filenames:
            if fname.startswith("."):
                continue
            rel = f"{rel_dir}/{fname}"
            if not _is_image(fname):
                others.append(shown(rel))
                continue
            reason = _why_unreadable(root / rel, rel)
            if reason:
                bad.append(f"{shown(rel)} ({reason})")
            else:
                images.append(rel)
    return sorted(images), sorted(others), sorted(bad)


def _check_split(root: Path, split: str, expected: str) -> Path:
    """The split folder, holding exactly the class folders (an extra one would silently
    become a third Keras label)."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"dataset folder {quoted(root)}: no {split}/ folder; {expected}")
    found = sorted(e.name for e in os.scandir(split_dir)
                   if e.is_dir() and not e.name.startswith("."))
    extra = [name for name in found if name not in CLASSES]
    if extra:
        raise DataError(f"dataset folder {quoted(split_dir)}: unexpected class folder "
                        f"{shown(extra[0])}/ (Keras would make it another label); expected only "
                        f"{CLASSES[0]}/ and {CLASSES[1]}/")
    return split_dir


def scan_dataset(root: str | os.PathLike, *, skip_bad: bool = False) -> DatasetInfo:
    """Check the cats_and_dogs_filtered layout, list the images training will read, and
    fingerprint exactly that list.

    `root` must hold `train/` and `validation/`, each with exactly the class folders
    `cats/` and `dogs/`, each with at least one image. Anything else is a DataError naming
    the folder: an extra class folder would silently become a third Keras label, and an
    empty one would train a one-class model. Files Keras would ignore are listed in
    `non_image_files`, not refused. Image files that cannot be read (dangling or looping
    links, FIFOs and other special files, unreadable files, names that are not UTF-8) are
    one DataError listing them, or with `skip_bad` are left out and listed in `bad_files`."""
    root = Path(root)
    expected = f"expected {SPLITS[0]}/ and {SPLITS[1]}/, each with {CLASSES[0]}/ and {CLASSES[1]}/"
    if not root.exists():
        raise DataError(f"dataset folder {quoted(root)}: does not exist; {expected}")
    if not root.is_dir():
        raise DataError(f"dataset folder {quoted(root)}: is a file, not a folder; {expected}")
    files: dict[str, dict[str, list[str]]] = {}
    non_image: list[str] = []
    bad: list[str] = []
    for split in SPLITS:
        split_dir = _check_split(root, split, expected)
        files[split] = {}
        for cls in CLASSES:
            class_dir = split_dir / cls
            if not class_dir.is_dir():
                raise DataError(f"dataset folder {quoted(split_dir)}: no {cls}/ folder; expected "
                                f"{CLASSES[0]}/ and {CLASSES[1]}/")
            images, others, unreadable = _scan_class(root, class_dir)
            if not images and not unreadable:
                raise DataError(f"dataset folder {quoted(class_dir)}: no images; expected "
                                f"{'/'.join(IMAGE_EXTENSIONS)} files")
            files[split][cls] = images
            non_image.extend(others)
            bad.extend(unreadable)
    hashes = _hash_all(root, [p for c in files.values() for ps in c.values() for p in ps], bad)
    _refuse_bad(root, bad, skip_bad)
    for split, classes in files.items():
        for cls in classes:
            classes[cls] = [p for p in classes[cls] if p in hashes]
            if not classes[cls]:
                raise DataError(f"dataset folder {quoted(root / split / cls)}: no readable images "
                                f"left; expected at least one")
    fingerprint = _fingerprint(hashes)
    known = fingerprint == KNOWN_FINGERPRINT
    return DatasetInfo(root=root, files=files, non_image_files=sorted(non_image),
                       fingerprint=fingerprint, fingerprint_known=known, bad_files=sorted(bad),
                       changes="" if known else official_changes(hashes))


def _refuse_bad(root: Path, bad: list[str], skip_bad: bool) -> None:
    """One line naming every unreadable image (the first ten, and how many more)."""
    if bad and not skip_bad:
        listing = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DataError(f"{len(bad)} unreadable image file(s) in {quoted(root)}: {listing}; "
                        "expected regular, readable files with UTF-8 names: fix or remove them, "
                        "or pass --skip-bad-images")


def _hash_all(root: Path, relative_paths: list[str], bad: list[str]) -> dict[str, str]:
    """sha256 of every listed file; a file that fails to read joins `bad` instead."""
    hashes: dict[str, str] = {}
    for rel in relative_paths:
        try:
            hashes[rel] = file_sha256(root / rel)
        except OSError as exc:
            bad.append(f"{shown(rel)} ({exc.strerror or exc})")
    return hashes


def _manifest_line(hexdigest: str, rel: str) -> str:
    """One `sha256sum` output line; names with a backslash or newline are escaped and
    the line starts with a backslash, as GNU sha256sum does."""
    if "\\" in rel or "\n" in rel:
        return "\\" + hexdigest + "  " + rel.replace("\\", "\\\\").replace("\n", "\\n") + "\n"
    return f"{hexdigest}  {rel}\n"


def _manifest_text(hashes: dict[str, str]) -> str:
    """Manifest lines sorted by the bytes of the path (`LC_ALL=C sort`)."""
    ordered = sorted(hashes, key=lambda p: p.encode("utf-8", "surrogateescape"))
    return "".join(_manifest_line(hashes[p], p) for p in ordered)


def _fingerprint(hashes: dict[str, str]) -> str:
    return hashlib.sha256(_manifest_text(hashes).encode("utf-8", "surrogateescape")
                          ).hexdigest()


def _training_images(relative_paths: Iterable[str]) -> list[str]:
    return [p for p in relative_paths if _is_image(p) and p.split("/", 1)[0] in SPLITS]


def manifest(root: str | os.PathLike, relative_paths: Iterable[str]) -> str:
    """The `sha256sum` manifest of the image files (every extension training reads, in
    any case) among `relative_paths` that lie under train/ or validation/, sorted by the
    bytes of the path (`LC_ALL=C sort`)."""
    root = Path(root)
    return _manifest_text({p: file_sha256(root / p) for p in _training_images(relative_paths)})


def compute_fingerprint(root: str | os.PathLike, relative_paths: Iterable[str]) -> str:
    """The dataset fingerprint: sha256 of the manifest above. For the official set (JPEGs
    only) it is what /shared/data/README.md defines, the output of
    `find train validation -type f -name '*.jpg' | LC_ALL=C sort | xargs sha256sum | sha256sum`;
    any other image file training would read changes it. Content-based, so a copy
    anywhere, under any path, gets the same fingerprint."""
    root = Path(root)
    return _fingerprint({p: file_sha256(root / p) for p in _training_images(relative_paths)})


#: The official set's manifest, shipped with the package (facts about the public
#: dataset, not images); checked against KNOWN_FINGERPRINT before it is trusted.
OFFICIAL_MANIFEST = Path(__file__).with_name("official_manifest.sha256")


def official_hashes() -> dict[str, str]:
    """Path -> sha256 of the 3000 official files, from the shipped manifest."""
    text = OFFICIAL_MANIFEST.read_text(encoding="utf-8")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != KNOWN_FINGERPRINT:
        raise DataError(f"{quoted(OFFICIAL_MANIFEST)}: does not hash to the official fingerprint "
                        f"{KNOWN_FINGERPRINT}; expected the manifest shipped with catsdogs "
                        "(reinstall it)")
    return {rel: digest for digest, rel in (line.split("  ", 1) for line in text.splitlines())}


def official_changes(hashes: dict[str, str]) -> str:
    """How a file list differs from the official set: 'N added, M missing, K changed'."""
    official = official_hashes()
    added = sum(1 for rel in hashes if rel not in official)
    missing = sum(1 for rel in official if rel not in hashes)
    changed = sum(1 for rel, digest in hashes.items() if official.get(rel, digest) != digest)
    return f"{added} added, {missing} missing, {changed} changed"


def is_synthetic(root: str | os.PathLike) -> bool:
    """True if `root` holds a dataset made by `synthetic.make_synthetic` (its marker file
    is there). Here, not in synthetic.py, so the data stage needs no generator to know."""
    return (Path(root) / MARKER).is_file()


def is_derived(root: str | os.PathLike) -> bool:
    """True if `root` is a re-encoded copy made by `derived.make_derived` (its marker)."""
    return (Path(root) / DERIVED_MARKER).is_file()


def dataset_kind(root: str | os.PathLike) -> str:
    """"synthetic", "derived" or "real": the one answer every row, report and check
    records, so a result on generated images or on a re-encoded copy can never be
    labelled as the real task on the official files."""
    if is_synthetic(root):
        return "synthetic"
    return "derived" if is_derived(root) else "real"


def describe(info: DatasetInfo) -> str:
    """The report `catsdogs data` prints: where, how many per split and class, and
    whether the data is the official set."""
    counts = info.counts()
    lines = [f"Dataset: {info.root}"]
    if is_synthetic(info.root):
        lines.append("  SYNTHETIC: generated images, not cats and dogs; accuracy here says "
                     "nothing about the real task")
    if is_derived(info.root):
        lines.append("  DERIVED: a re-encoded 160x160 copy (see its DERIVED file), not the "
                     "official files; its numbers are not comparable with theirs")
    header = f"  {'split':<12}" + "".join(f"{cls:>8}" for cls in CLASSES) + f"{'total':>8}"
    lines.append(header)
    for split in SPLITS:
        row = counts[split]
        lines.append(f"  {split:<12}" + "".join(f"{row[cls]:>8}" for cls in CLASSES)
                     + f"{sum(row.values()):>8}")
    lines.append(f"  {info.label_counts_message('train')} (train)")
    lines.append(f"  Non-image files ignored: {len(info.non_image_files)}")
    if info.bad_files:
        lines.append(f"  Unreadable image files left out (--skip-bad-images): "
                     f"{len(info.bad_files)}: " + "; ".join(info.bad_files[:5]))
    verdict = ("matches the official cats_and_dogs_filtered" if info.fingerprint_known
               else f"NOT the official set: {info.changes}; results will carry it")
    lines.append(f"  Fingerprint: {info.fingerprint} ({verdict})")
    return "\n".join(lines)

"""The probe file (format catsdogs-probe/1): how a probe is stored, written and read back.

One `.npz` archive (NumPy's zip of arrays, read with `allow_pickle=False`): the member
`meta.json` holds the JSON description (options, data, provenance, machine, and per
(variant, seed) every layer's records); every other member is one array's fixed sample.
An array is never stored whole (a forward output of model3 is 2.4 million values), but
recorded so that a difference can be measured, not only detected:

- `sha256` of its exact bytes (C order, little-endian), with its `shape` and `dtype`:
  equal digests mean bit-identical arrays;
- `stats` (mean, std, min, max over the finite values, and how many are not finite);
- a fixed sample of at most SAMPLE_SIZE values at positions that depend only on the
  array's size (`sample_indices`), the same in every environment, so two probes compare
  value for value: largest absolute and relative difference, fraction changed.

docs/verdicts.md ("Attribution") documents every key. Reading needs NumPy only, so
`probe-diff` runs without TensorFlow; a file of another format version is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.errors import UsageError
from catsdogs.fsutil import write_new_file

FORMAT = "catsdogs-probe/1"
#: Values kept per array: enough to estimate the fraction changed to about +-1.5 points.
SAMPLE_SIZE = 1024
META_MEMBER = "meta.json"
#: The record kinds of one layer, in the order a difference is looked for: the weights a
#: layer starts with, what it computes on the batch, the gradient of the loss, and the
#: weights after the training steps.
LAYER_KINDS = ("initial_weights", "forward", "gradient", "final_weights")
#: Keys every probe file's JSON must carry, and every (variant, seed) entry in it.
META_KEYS = ("format", "options", "data", "provenance", "machine", "probes")
ENTRY_KEYS = ("variant", "alias", "seed", "input", "layers", "loss", "steps")
LAYER_KEYS = ("index", "name", "class")
STEP_KEYS = ("done", "losses", "batches")


def sample_indices(size: int, count: int = SAMPLE_SIZE) -> np.ndarray:
    """`count` positions spread over a flattened array of `size` values, by a rule of the
    size alone (no random generator whose stream could change between NumPy releases).
    Multiples of a step near size/phi, coprime with size, visit every channel and row
    instead of aliasing with the layout (an even stride would see one channel only)."""
    if size <= count:
        return np.arange(size, dtype=np.int64)
    step = max(1, round(size / ((1 + math.sqrt(5)) / 2)))
    while math.gcd(step, size) != 1:
        step += 1
    return np.sort((np.arange(count, dtype=np.int64) * step) % size)


def digest(array: np.ndarray) -> str:
    """sha256 of the array's exact bytes, in C order and little-endian on every machine."""
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return hashlib.sha256(data.tobytes()).hexdigest()


def _stats(flat: np.ndarray) -> dict[str, Any]:
    """Summary of the finite values (float64), and how many are NaN or infinite."""
    values = flat.astype(np.float64)
    finite = values[np.isfinite(values)]
    summary: dict[str, Any] = {"nonfinite": int(values.size - finite.size)}
    for name, function in (("mean", np.mean), ("std", np.std), ("min", np.min),
                           ("max", np.max)):
        summary[name] = float(function(finite)) if finite.size else None
    return summary


class Recorder:
    """Collects the arrays' samples (the archive's members) while a probe's JSON is built."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def measure(self, key: str, array: Any) -> dict[str, Any] | None:
        """The record of one array (None for an empty one, e.g. a layer without weights),
        its sample kept under `key`."""
        data = np.asarray(array)
        if data.size == 0:
            return None
        flat = data.reshape(-1)
        self.arrays[key] = flat[sample_indices(flat.size)].copy()
        return {"sha256": digest(data), "shape": list(data.shape), "dtype": str(data.dtype),
                "stats": _stats(flat), "sampled": int(self.arrays[key].size), "sample": key}

    def layer(self, prefix: str, index: str, name: str, cls: str,
              arrays: dict[str, Any]) -> dict[str, Any]:
        """One layer's entry: its position, Keras name and class, and a record (or None)
        for each of LAYER_KINDS present in `arrays`."""
        entry: dict[str, Any] = {"index": index, "name": name, "class": cls}
        for kind in LAYER_KINDS:
            value = arrays.get(kind)
            entry[kind] = None if value is None else self.measure(f"{prefix}/{kind}/{index}",
                                                                 value)
        return entry


def encode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The archive's bytes: meta.json first, then every sample (compressed)."""
    buffer = io.BytesIO()
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    np.savez_compressed(buffer, **{META_MEMBER: np.frombuffer(text.encode(), np.uint8)},
                        **arrays)
    return buffer.getvalue()


def check_new_file(path: Path, option: str = "--out") -> Path:
    """A probe file is never overwritten (results are data): refuse an existing path, or
    one whose folder does not exist, before anything is computed."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise UsageError(f"{option} {path}: already exists; expected a new file (a probe "
                         "file is never overwritten)")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: no folder {str(path.parent)!r}; expected an "
                         "existing folder")
    return path


def write_probe(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                option: str = "--out") -> None:
    """Write a new probe file (never replacing one that appeared meanwhile)."""
    try:
        write_new_file(Path(path), encode(meta, arrays))
    except FileExistsError:
        raise UsageError(f"{option} {path}: already exists; expected a new file (a probe "
                         "file is never overwritten)") from None


@dataclasses.dataclass(frozen=True)
class ProbeFile:
    """A probe read back: its JSON and its samples, and the name it is shown under."""

    shown: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.meta["probes"]

    def sample(self, record: dict[str, Any]) -> np.ndarray:
        return self.arrays[record["sample"]]


def _malformed(shown: str, what: str) -> UsageError:
    """The one line for a probe archive whose JSON lacks what the comparison reads."""
    return UsageError(f"{shown}: malformed probe file ({what}); expected a file written by "
                      f"catsdogs probe ({FORMAT})")


def _check_meta(shown: str, meta: Any, arrays: dict[str, np.ndarray]) -> None:
    """Every key the comparison reads is there, and every sample it names."""
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise _malformed(shown, f"meta.json has no {', '.join(missing)}")
    for entry in meta["probes"]:
        absent = [key for key in ENTRY_KEYS if key not in entry]
        if absent:
            raise _malformed(shown, f"an entry has no {', '.join(absent)}")
        parts = [("a layer", LAYER_KEYS, layer) for layer in entry["layers"]]
        for what, keys, found in parts + [("steps", STEP_KEYS, entry["steps"])]:
            lacking = sorted(set(keys) - set(found))
            if lacking:
                raise _malformed(shown, f"{what} has no {', '.join(lacking)}")
        records = [entry["input"]] + [layer.get(kind) for layer in entry["layers"]
                                      for kind in LAYER_KINDS]
        for record in filter(None, records):
            if record.get("sample") not in arrays:
                raise _malformed(shown, f"no sample {record.get('sample')!r}")


def read_probe(path: str | Path, shown: str | None = None) -> ProbeFile:
    """A probe file, or one UsageError line: missing, not a probe archive, another format
    version, or keys missing."""
    path = Path(path)
    shown = shown or str(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise UsageError(f"{shown}: {what}; expected a probe file written by catsdogs probe")
    not_probe = UsageError(f"{shown}: not a probe file (not a NumPy .npz archive with "
                           f"{META_MEMBER}); expected a file written by catsdogs probe")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a lone .npy array
            raise not_probe
        with archive:
            if META_MEMBER not in archive.files:
                raise not_probe
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise not_probe from None
    try:
        meta = json.loads(arrays.pop(META_MEMBER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(shown, f"meta.json is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise _malformed(shown, "meta.json is not an object")
    if meta.get("format") != FORMAT:
        raise UsageError(f"{shown}: format {meta.get('format')!r}; expected {FORMAT!r} "
                         "(written by another catsdogs version: probe again with this one)")
    try:
        _check_meta(shown, meta, arrays)
    except (TypeError, AttributeError, KeyError) as exc:  # a list where an object belongs...
        raise _malformed(shown, f"unexpected layout: {type(exc).__name__}: {exc}") from None
    return ProbeFile(shown, meta, arrays)

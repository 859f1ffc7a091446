"""How far the decoder without TensorFlow is from TensorFlow's, measured over a dataset.

    python -m catsdogs.dataset.decoder_diff [DATA_DIR] [--json PATH]

Decodes every image of DATA_DIR (a cats_and_dogs_filtered folder) twice, into the cache's
uint8 160x160 arrays: with tf.io.decode_image + tf.image.resize (the TensorFlow backend's
path, catsdogs.dataset.pipeline) and with catsdogs.dataset.decode_without_tf (the JAX and
PyTorch path), and prints how the bytes differ: images identical, largest absolute
difference, the share of values (pixel channels) and of pixels that differ. It needs
TensorFlow, so it runs where both decoders are installed; README "Keras backends" quotes
its result on the official dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.dataset import decode_without_tf, pipeline, scan


def difference(reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """The numbers that say how two uint8 (N, H, W, 3) stacks of one file list differ."""
    delta = np.abs(reference.astype(np.int16) - other.astype(np.int16))
    per_image = delta.reshape(len(delta), -1).max(axis=1) if len(delta) else delta
    return {"images": int(len(delta)), "images_identical": int(np.sum(per_image == 0)),
            "max_abs_difference": int(delta.max()) if delta.size else 0,
            "values_differing": float(np.mean(delta > 0)) if delta.size else 0.0,
            "pixels_differing": float(np.mean(delta.max(axis=-1) > 0)) if delta.size else 0.0,
            "histogram": {str(level): int(count) for level, count
                          in enumerate(np.bincount(delta.ravel())) if count and level}}


def compare_decoders(root: Path) -> dict[str, Any]:
    """Both decoders over every image the scan finds; files either one cannot read are
    named, not compared."""
    info = scan.scan_dataset(root, skip_bad=True)
    relpaths = sorted(info.image_paths())
    reference, bad_tf = pipeline.decode_files(root, relpaths, skip_bad=True)
    other, bad_other = decode_without_tf.decode_files(root, relpaths, skip_bad=True)
    if bad_tf != bad_other:  # keep only the files both read, in the same order
        keep_tf = [rel for rel in relpaths if rel not in bad_tf]
        keep_other = [rel for rel in relpaths if rel not in bad_other]
        both = [rel for rel in keep_tf if rel not in bad_other]
        reference = reference[[keep_tf.index(rel) for rel in both]]
        other = other[[keep_other.index(rel) for rel in both]]
    return {"data_dir": str(root), "dataset_fingerprint": info.fingerprint,
            "reference": pipeline.decoder_name(), "decoder": decode_without_tf.decoder_name(),
            "unreadable_by_tensorflow": bad_tf, "unreadable_without_tensorflow": bad_other,
            **difference(reference, other)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catsdogs.dataset.decoder_diff",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", default="../shared/data/cats_and_dogs_filtered")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    result = compare_decoders(Path(args.data_dir))
    for key, value in result.items():
        print(f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

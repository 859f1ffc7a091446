"""A derived copy of a dataset: every image decoded, resized to 160x160 and re-encoded as JPEG.

    python -m catsdogs.dataset.derived SOURCE DEST [--quality 90]

What it is for: carrying the data to a machine that cannot download it, in much less
room (the 3000 official images, 68 MB zipped, become about 28 MB at quality 90). What it
is NOT: the official set. Its pixels went through one more lossy JPEG encoding, so its
numbers are not comparable with runs on the official files, and it says so everywhere:
its marker file (`DERIVED`, written last, naming the source's fingerprint and how it was
made) makes every row and report record `dataset=derived`, and its own fingerprint
(never the official one) travels with every row, so `compare` refuses to mix the two.

The images are decoded exactly as training decodes them (TensorFlow's bytes, through
catsdogs.dataset.decode_without_tf), so the copy is what a run on the source would have
fed its models, plus one JPEG encoding by Pillow. Same folders, same file names.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from catsdogs.constants import IMAGE_SIZE
from catsdogs.dataset import decode_without_tf, scan
from catsdogs.errors import DataError, UsageError

DEFAULT_QUALITY = 90


def make_derived(source: str | os.PathLike, dest: str | os.PathLike, *,
                 quality: int = DEFAULT_QUALITY) -> Path:
    """Write the derived copy of `source` to `dest` (which must not exist yet) and return
    it. Built in a hidden folder beside `dest` and renamed into place when complete, with
    the marker written last, so a half-made copy is never taken for a dataset."""
    from PIL import Image

    source, dest = Path(source), Path(dest)
    if dest.exists():
        raise UsageError(f"{dest}: already exists; expected a new folder for the derived copy")
    if not 1 <= quality <= 95:
        raise UsageError(f"--quality: expected 1 to 95 (Pillow's range), got {quality!r}")
    info = scan.scan_dataset(source)
    relpaths = sorted(info.image_paths())
    images, _ = decode_without_tf.decode_files(source, relpaths, IMAGE_SIZE)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building-", dir=dest.parent))
    try:
        for rel, pixels in zip(relpaths, images):
            target = building / rel  # the same name; JPEG bytes (decoders look at the content)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "RGB").save(target, "JPEG", quality=quality)
        (building / scan.DERIVED_MARKER).write_text(json.dumps(
            _provenance(source, info, quality, len(relpaths)), indent=2) + "\n")
        os.rename(building, dest)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return dest


def _provenance(source: Path, info, quality: int, count: int) -> dict:
    """What the marker says: what the copy was made from, and how."""
    import PIL

    return {"derived_from": str(source.resolve()), "source_fingerprint": info.fingerprint,
            "source_official": info.fingerprint_known, "images": count,
            "how": (f"decoded as training decodes ({decode_without_tf.decoder_name()}), "
                    f"resized to {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, re-encoded as JPEG quality "
                    f"{quality} by Pillow {PIL.__version__}"),
            "note": "NOT the official dataset: one more lossy JPEG encoding; its numbers are "
                    "not comparable with runs on the official files"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catsdogs.dataset.derived",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    args = parser.parse_args(argv)
    try:
        dest = make_derived(args.source, args.dest, quality=args.quality)
    except (UsageError, DataError) as exc:
        print(f"catsdogs: error: {exc}", file=sys.stderr)
        return exc.exit_code
    size = sum(path.stat().st_size for path in dest.rglob("*") if path.is_file())
    info = scan.scan_dataset(dest)
    print(f"{dest}: {len(info.image_paths())} images, {size / 2**20:.1f} MiB, fingerprint "
          f"{info.fingerprint} (derived, not the official set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

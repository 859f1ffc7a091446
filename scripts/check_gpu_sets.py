"""Check the facts the result sets of scripts/gpu_backends.sh recorded; exit 1 if one is wrong.

    python scripts/check_gpu_sets.py --expect gpu|cpu --backends jax,torch SET [SET ...]

Per set and row: it finished (status ok); it ran on the backend it names, with that
backend's version and no TensorFlow version; on the device expected (a GPU: its name,
CUDA, the driver and the peak memory recorded); on the DERIVED data (never passed off as
the official set); with the decoder that needs no TensorFlow and a commit. Every backend
asked for has a set. Reads the CSVs with the standard library only, so it runs wherever
the sets are.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def _problems(row: dict[str, str], environment: dict, expect: str) -> list[str]:
    """What is wrong with one row (empty when nothing is)."""
    backend = row["backend"]
    found = []
    if row["status"] != "ok":
        found.append(f"status {row['status']} ({row['error']})")
    if backend not in ("jax", "torch") or not row.get(f"{backend}_version"):
        found.append(f"backend {backend!r} without its version")
    if row["tf_version"]:
        found.append(f"tf_version {row['tf_version']!r} on {backend}")
    if row["device"] != expect:
        found.append(f"device {row['device']!r}, expected {expect}")
    if expect == "gpu":
        for key in ("gpu_name", "cuda_version"):
            if not row[key]:
                found.append(f"{key} empty")
        if not environment.get("gpu_driver") or not environment.get("gpu_count"):
            found.append("environment.json lacks gpu_driver or gpu_count")
        if not row["gpu_peak_mb"] or float(row["gpu_peak_mb"]) <= 0:
            found.append("gpu_peak_mb empty")
    elif row["gpu_name"] or row["gpu_peak_mb"]:
        found.append("GPU facts recorded on a CPU")
    if row["dataset"] != "derived" or row["dataset_fingerprint_known"] != "false":
        found.append(f"dataset {row['dataset']!r} (known {row['dataset_fingerprint_known']}), "
                     "expected the derived copy")
    if not row["decoder"].startswith("simplejpeg"):
        found.append(f"decoder {row['decoder']!r}")
    if not row["git_commit"]:
        found.append("git_commit empty")
    return found


def check(sets: list[Path], expect: str, backends: list[str]) -> tuple[list[str], bool]:
    """(report lines, all good)."""
    lines, good, seen = [], True, set()
    for folder in sets:
        environment = json.loads((folder / "environment.json").read_text())
        with open(folder / "runs.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        lines.append(f"{folder.name}: {len(rows)} run(s), device {environment.get('device')}"
                     f" {environment.get('gpu_name', '')} (driver "
                     f"{environment.get('gpu_driver', '')}, {environment.get('gpu_count')} "
                     f"GPU(s))")
        for row in rows:
            seen.add(row["backend"])
            problems = _problems(row, environment, expect)
            good &= not problems
            lines.append(
                f"  {row['variant']} seed {row['seed']}: {row['backend']} "
                f"{row.get(row['backend'] + '_version', '')}, keras {row['keras_version']}, "
                f"{row['device']} {row['gpu_name']}, CUDA {row['cuda_version'] or '-'}, "
                f"cuDNN {row['cudnn_version'] or '-'}, peak {row['gpu_peak_mb'] or '-'} MiB, "
                f"test acc {row['test_accuracy'] or '-'}, step {row['step_time_ms'] or '-'} "
                f"ms: " + ("ok" if not problems else "WRONG: " + "; ".join(problems)))
    for backend in backends:
        if backend not in seen:
            good = False
            lines.append(f"MISSING: no run on {backend}")
    lines.append("all recorded facts as expected" if good else "SOME FACTS ARE WRONG (above)")
    return lines, good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("sets", nargs="+", type=Path)
    args = parser.parse_args(argv)
    lines, good = check(args.sets, args.expect, args.backends.split(","))
    print("\n".join(lines))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

"""Probe files made without TensorFlow, for the probe-diff and bisect tests: the records
are made by the real `fileformat.Recorder` from fixed NumPy arrays, laid out as
`attribution.probe` lays them out (tests/test_probe.py holds a real probe's keys against
these), with a difference planted where a test asks for one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from catsdogs.attribution.fileformat import FORMAT, ProbeFile, Recorder, encode

#: (index, Keras name, class, has weights): model3's shape in miniature.
LAYERS = (("0", "preprocessor", "Functional", False),
          ("1.0", "random_flip", "RandomFlip", False),
          ("1.1", "random_rotation", "RandomRotation", False),
          ("2", "conv2d", "Conv2D", True),
          ("3", "max_pooling2d", "MaxPooling2D", False),
          ("4", "dense", "Dense", True))
MACHINE = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx2", "fma"], "cpu_flags_sha256": "f1",
           "cpu_count": 2, "architecture": "x86_64", "system": "Linux"}


def _array(seed: int, size: int = 3000) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(size).astype(np.float32)


def _planted(array: np.ndarray, amount: float, every: int = 4) -> np.ndarray:
    """The array with every `every`-th value moved by `amount` (a quarter of them)."""
    changed = array.copy()
    changed[::every] += np.float32(amount)
    return changed


def _entry(recorder: Recorder, variant: str, alias: str, seed: int, changed_from: str | None,
           weights_at: str | None, amount: float) -> dict:
    """One (variant, seed) entry; forward outputs from `changed_from` on (and every
    gradient, the steps and the final weights) carry the planted change."""
    prefix = f"{variant}/s{seed}"
    positions = [index for index, *_ in LAYERS]
    start = positions.index(changed_from) if changed_from else len(LAYERS)
    if weights_at is not None:
        start = min(start, positions.index(weights_at))
    moved = start < len(LAYERS)
    layers = []
    for position, (index, name, cls, weighted) in enumerate(LAYERS):
        arrays = {"forward": _array(position)}
        if position >= start:
            arrays["forward"] = _planted(arrays["forward"], amount)
        if weighted:
            arrays["initial_weights"] = _array(100 + position, 500)
            if index == weights_at:
                arrays["initial_weights"] = _planted(arrays["initial_weights"], amount)
            arrays["gradient"] = _planted(_array(200 + position, 500), amount) if moved \
                else _array(200 + position, 500)
            arrays["final_weights"] = _planted(_array(300 + position, 500), amount) if moved \
                else _array(300 + position, 500)
        layers.append(recorder.layer(prefix, index, name, cls, arrays))
    losses = [0.7106313705444336, 0.6931] if not moved else [0.7107890248298645, 0.6932]
    batches = [{"images": "i1", "labels": "l1"}, {"images": "i2", "labels": "l2"}]
    return {"variant": variant, "alias": alias, "seed": seed,
            "input": recorder.measure(f"{prefix}/input", np.arange(96, dtype=np.uint8)),
            "labels": [0, 1], "batch_files": ["train/cats/cat.1.jpg", "train/dogs/dog.1.jpg"],
            "loss": losses[0] + (0.5 if moved else 0.0),
            "layers": layers, "steps": {"requested": 2, "done": 2, "losses": losses,
                                        "batches": batches},
            "initial_weights_sha256": "w0", "final_weights_sha256": "w1", "seconds": 1.0}


def fake_probe(shown: str = "A", *, changed_from: str | None = None,
               weights_at: str | None = None, amount: float = 1e-3,
               variants: tuple = (("preprocessed_cnn", "model3"),), seeds: tuple = (0,),
               packages: dict | None = None, machine: dict | None = None,
               options: dict | None = None, data: dict | None = None,
               only: str | None = None) -> ProbeFile:
    """A probe whose forward outputs part at layer `changed_from` (and/or whose initial
    weights differ at `weights_at`); `only` restricts the change to one variant."""
    recorder = Recorder()
    entries = []
    for variant, alias in variants:
        planted = only is None or only == variant
        for seed in seeds:
            entries.append(_entry(recorder, variant, alias, seed,
                                  changed_from if planted else None,
                                  weights_at if planted else None, amount))
    packages = packages or {"tensorflow": "2.18.1", "keras": "3.7.0"}
    meta = {
        "format": FORMAT, "catsdogs_version": "0.1.0", "created_utc": "2026-01-01T00:00:00+00:00",
        "command": ["catsdogs", "probe"],
        "options": {"variants": [v for v, _ in variants], "seeds": list(seeds),
                    "batch_size": 32, "limit": 16, "steps": 2, "weights": "imagenet",
                    "deterministic": False, "synthetic": False, **(options or {})},
        "data": {"dataset": "real", "data_dir": "/data", "dataset_fingerprint": "7ecc",
                 "dataset_fingerprint_known": True, "dataset_changes": "",
                 "skipped_images": [], **(data or {})},
        "provenance": {"tf_version": packages.get("tensorflow", "?"),
                       "keras_version": packages.get("keras", "?"), "device": "cpu",
                       "host": "vm", "packages": dict(packages)},
        "machine": {**MACHINE, **(machine or {})},
        "probes": entries,
    }
    meta = json.loads(json.dumps(meta))  # as read back from a file
    return ProbeFile(shown, meta, dict(recorder.arrays))


def write_fake(path: Path, **kwargs) -> Path:
    """`fake_probe(**kwargs)` written as a probe file."""
    probe = fake_probe(**kwargs)
    path.write_bytes(encode(probe.meta, probe.arrays))
    return path

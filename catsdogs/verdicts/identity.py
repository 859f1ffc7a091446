"""Whether two sides' runs trained bit for bit the same, and where they first part.

Runs are paired by (variant, seed, configuration); a pair matches when every epoch's
loss, accuracy, val_loss and val_accuracy and the final test metrics are equal as
written (the CSVs keep full float precision). Identical numerics mean the release did
not change what the model computes on this device, so its accuracy cannot have
regressed; GPU runs without --deterministic are not checked, since they rarely repeat.
Runs on different Keras backends are not checked either: each backend has its own
kernels and random number generators, so their numerics are not comparable and only
the statistics can compare them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from catsdogs.backend import recorded_backend

if TYPE_CHECKING:
    from catsdogs.verdicts.side import Side

#: What must match for two runs to be the same experiment (besides variant and seed).
CONFIG_KEYS = ("epochs", "batch_size", "image_size", "limit", "dataset_fingerprint",
               "pretrained", "weights", "deterministic", "mixed_precision", "xla", "strategy",
               "replicas", "n_train", "n_validation", "n_test")
HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
FINAL_METRICS = ("test_loss", "test_accuracy", "test_correct")


@dataclasses.dataclass(frozen=True)
class Identity:
    """Whether paired runs trained bit for bit the same. status: identical, diverged,
    unpaired (no run with the same seed and configuration on both sides), unchecked
    (a GPU run without --deterministic: no claim either way) or not comparable (the
    pairs ran on different Keras backends)."""

    status: str
    pairs: int
    epoch: int | None = None  # None for a difference in the final test metrics
    metric: str | None = None
    base_value: float | None = None
    candidate_value: float | None = None
    seed: int | None = None
    #: The machine facts that differ between the sides (resultset.machines), when they do.
    machines: str | None = None
    backends: tuple[str, str] | None = None  # (base, candidate) when they differ

    def text(self) -> str:
        if self.status == "identical":
            return f"identical ({self.pairs} paired seed{'s' * (self.pairs != 1)})"
        if self.status == "diverged":
            where = f"epoch {self.epoch}" if self.epoch is not None else "the test metrics"
            across = (f"; on different machines ({self.machines}): bit-identical numerics "
                      "are not expected across them" if self.machines else "")
            return (f"diverged at {where} ({self.metric}, {self.base_value!r} -> "
                    f"{self.candidate_value!r}; seed {self.seed}){across}")
        if self.status == "unchecked":
            return "not checked (GPU run without --deterministic)"
        if self.status == "not comparable":
            return (f"not comparable across Keras backends ({' vs '.join(self.backends or ())}): "
                    "different kernels and random numbers; statistics only")
        return "no paired runs (no seed with the same configuration on both sides)"


def _config(run: pd.Series) -> tuple:
    return tuple(None if pd.isna(run[key]) else run[key] for key in CONFIG_KEYS)


def _nondeterministic_gpu(run: pd.Series) -> bool:
    return run["device"] == "gpu" and run["deterministic"] is not True


def _same(a: Any, b: Any) -> bool:
    """Exactly equal, or both missing (a missing cell never equals a number)."""
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return bool(a == b)


def first_difference(base: Side, b_run: pd.Series, candidate: Side, c_run: pd.Series
                     ) -> tuple[float, str, Any, Any] | None:
    """(epoch, metric, base value, candidate value) of the first mismatch between two
    runs' histories, then their final test metrics (epoch inf); None when all match."""
    b_rows, c_rows = base.epoch_rows(b_run), candidate.epoch_rows(c_run)
    b_by, c_by = b_rows.set_index("epoch"), c_rows.set_index("epoch")
    for epoch in sorted(set(b_by.index) | set(c_by.index)):
        if epoch not in b_by.index or epoch not in c_by.index:
            missing = "base" if epoch not in b_by.index else "candidate"
            return float(epoch), f"epoch missing on the {missing} side", None, None
        for metric in HISTORY_METRICS:
            if not _same(b_by.at[epoch, metric], c_by.at[epoch, metric]):
                return float(epoch), metric, b_by.at[epoch, metric], c_by.at[epoch, metric]
    for metric in FINAL_METRICS:
        if not _same(b_run[metric], c_run[metric]):
            return math.inf, metric, b_run[metric], c_run[metric]
    return None


def seed_pairs(variant: str, base: Side, candidate: Side) -> list[tuple[pd.Series, pd.Series]]:
    """The variant's ok runs paired by (seed, configuration): same seed and settings mean
    the same initial weights, data order and test images on both sides. A candidate seed
    recorded twice pairs once (its first run)."""
    c_by_key: dict[tuple, pd.Series] = {}
    for _, run in candidate.ok(variant).iterrows():
        c_by_key.setdefault((int(run["seed"]), _config(run)), run)
    return [(b_run, c_by_key[key]) for _, b_run in base.ok(variant).iterrows()
            if (key := (int(b_run["seed"]), _config(b_run))) in c_by_key]


def identity(variant: str, base: Side, candidate: Side) -> Identity:
    """Pair ok runs by (seed, configuration) and compare them exactly (floats as written,
    at full precision). One mismatch anywhere: diverged, at the earliest epoch."""
    pairs = seed_pairs(variant, base, candidate)
    if not pairs:
        return Identity("unpaired", 0)
    backends = [(recorded_backend(b["backend"]), recorded_backend(c["backend"])) for b, c in pairs]
    crossing = [pair for pair in backends if pair[0] != pair[1]]
    if crossing:
        return Identity("not comparable", len(pairs), backends=crossing[0])
    if any(_nondeterministic_gpu(b) or _nondeterministic_gpu(c) for b, c in pairs):
        return Identity("unchecked", len(pairs))
    found = []
    for b_run, c_run in pairs:
        diff = first_difference(base, b_run, candidate, c_run)
        if diff is not None:
            found.append((diff[0], int(b_run["seed"]), diff))
    if not found:
        return Identity("identical", len(pairs))
    epoch, seed, (_, metric, b_value, c_value) = min(found, key=lambda item: item[:2])
    return Identity("diverged", len(pairs), None if math.isinf(epoch) else int(epoch), metric,
                    _plain(b_value), _plain(c_value), seed)


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones (JSON), NaN to None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value

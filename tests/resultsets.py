"""Realistic result sets for tests of `report` and `compare`: TEST DATA, not measurements.

They are written through the real writer (`catsdogs.resultset.store.ResultSet.create` and
`append_run`), with the real schema's columns only, so a test reads exactly what the
benchmark writes. Every set says it is test data: host `testhost`, commit `test…`.
Accuracies are fractions, as in the schema; step times are in ms.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.dataset.scan import KNOWN_FINGERPRINT
from catsdogs.models import VARIANTS, get_variant
from catsdogs.resultset.store import ResultSet
from catsdogs.training.contention import CONTENDED_SHARE
from catsdogs.training.machine import machine_facts

TEST_HOST = "testhost"


def stand_in_machine(**changes: Any) -> dict[str, Any]:
    """A stand-in machine's facts (a 2-CPU AVX2 test CPU), with `changes` passed to
    machine_facts (e.g. cpus=[0] for a pinned run): what environment.json's `machine`
    holds. Test data: its CPU is called 'test CPU'."""
    stand_in = dict(info={"vendor_id_raw": "TestVendor", "brand_raw": "test CPU",
                          "family": 6, "model": 1, "flags": ["avx", "avx2", "fma"]},
                    cpus=[0, 1], logical=2, physical=2, memory_bytes=8 * 2**30, cpu_max="",
                    environ={}, smi_csv="")
    return machine_facts(**dict(stand_in, **changes))


TEST_MACHINE = stand_in_machine()
TEST_COMMIT = "test000000000000000000000000000000000000"
SYNTHETIC_FINGERPRINT = "5e" * 32  # what a synthetic set's manifest hash looks like

#: Roughly the post's final test accuracies (fractions).
DEFAULT_ACCURACY = {"baseline_cnn": 0.72, "augmented_cnn": 0.76, "preprocessed_cnn": 0.80,
                    "transfer_mobilenetv2": 0.96}
#: CPU-like median step times (ms) for a batch of 32 at 160x160.
DEFAULT_STEP_MS = {"baseline_cnn": 120.0, "augmented_cnn": 128.0, "preprocessed_cnn": 150.0,
                   "transfer_mobilenetv2": 95.0}
#: Parameter counts as the real builders report them (total, trainable).
PARAMS = {"baseline_cnn": (72_210, 72_210), "augmented_cnn": (72_210, 72_210),
          "preprocessed_cnn": (1_641_362, 1_641_362),
          "transfer_mobilenetv2": (2_445_858, 187_874)}

N_TRAIN, N_VALIDATION, N_TEST = 2000, 808, 192  # the post's splits of the real set
STEPS_PER_EPOCH = 63  # ceil(2000 / 32)
BATCH_SIZE = 32
T0 = _dt.datetime(2026, 1, 5, 12, 0, tzinfo=_dt.timezone.utc)
_created = itertools.count()  # each set a minute later: distinct, deterministic names


def _next_time() -> _dt.datetime:
    return T0 + _dt.timedelta(minutes=next(_created))


def _per_variant(value: float | Mapping[str, float] | None, default: Mapping[str, float],
                 variant: str) -> float:
    if value is None:
        return default[variant]
    if isinstance(value, Mapping):
        return value.get(variant, default[variant])
    return float(value)


def environment(*, tf_version: str, keras_version: str, dataset: str, fingerprint: str,
                fingerprint_known: bool, device: str, gpu_name: str,
                data_dir: str | None = None, epochs: int = 5,
                machine: dict[str, Any] | None = TEST_MACHINE) -> dict[str, Any]:
    """An environment.json like the runner's, marked as test data (machine None: a set
    written before machines were recorded)."""
    return {"machine": machine, "host": TEST_HOST, "platform": "test-platform",
            "git_commit": TEST_COMMIT,
            "tf_version": tf_version, "keras_version": keras_version,
            "python_version": "3.11.7", "cuda_version": "12.5.1" if device == "gpu" else "",
            "cudnn_version": "9" if device == "gpu" else "", "device": device,
            "gpu_name": gpu_name, "gpu_count": 1 if device == "gpu" else 0, "gpu_driver": "",
            "cpu": "x86_64", "device_label": device, "data_dir": data_dir,
            "dataset": dataset, "dataset_fingerprint": fingerprint,
            "dataset_fingerprint_known": fingerprint_known, "non_image_files": 0,
            "weights": "imagenet", "weights_file": None, "weights_sha256": None,
            "options": {"epochs": epochs, "batch_size": BATCH_SIZE}, "note": "test data"}


def _epoch_rows(rng: np.random.Generator, *, epochs: int, train_acc: float, val_acc: float,
                step_ms: float, step_noise: float, contention: float = 0.02
                ) -> list[dict[str, Any]]:
    """Accuracy rising towards its final value; epoch 1 slow (tracing); noisy step times."""
    rows = []
    for epoch in range(1, epochs + 1):
        progress = 1 - 0.5 ** epoch if epoch < epochs else 1.0
        median = step_ms * max(0.2, 1 + step_noise * rng.standard_normal())
        if epoch == 1:
            median *= 3.0
        train_s = median * STEPS_PER_EPOCH / 1000
        rows.append({
            "epoch": epoch,
            "loss": 0.7 * (1 - progress) + 0.3 * (1 - train_acc),
            "accuracy": 0.5 + (train_acc - 0.5) * progress,
            "val_loss": 0.7 * (1 - progress) + 0.35 * (1 - val_acc),
            "val_accuracy": 0.5 + (val_acc - 0.5) * progress,
            "epoch_s": train_s + 1.5, "train_s": train_s, "steps": STEPS_PER_EPOCH,
            "step_ms_median": median, "process_cpu_s": 1.6 * (train_s + 1.5),
            "other_cpu_s": contention * 2 * (train_s + 1.5), "steal_s": 0.0,
        })
    return rows


def _run_row(variant: str, seed: int, index: int, epoch_rows: list[dict[str, Any]], *,
             test_acc: float, env: dict[str, Any], epochs: int, limit: int | None,
             failed: bool) -> dict[str, Any]:
    """A runs.csv row with every column filled the way the runner fills it."""
    start = T0 + _dt.timedelta(minutes=10 * index)
    pretrained = get_variant(variant).uses_weights  # --weights imagenet, as by default
    row: dict[str, Any] = {
        "run_id": f"{variant}-s{seed}-{start:%Y%m%dT%H%M%S%fZ}",
        "variant": variant, "alias": get_variant(variant).alias, "seed": seed,
        "status": "failed" if failed else "ok",
        "error": "ResourceExhaustedError: test data: simulated out of memory" if failed else "",
        "epochs": epochs, "batch_size": BATCH_SIZE, "image_size": "160x160",
        "dataset": env["dataset"], "dataset_fingerprint": env["dataset_fingerprint"],
        "dataset_fingerprint_known": env["dataset_fingerprint_known"], "limit": limit,
        "n_train": N_TRAIN, "n_validation": N_VALIDATION, "n_test": N_TEST,
        "skipped_images": 0, "pretrained": pretrained,
        "weights": "imagenet" if get_variant(variant).uses_weights else "",
        "deterministic": False, "mixed_precision": False, "xla": False,
        "strategy": "default", "replicas": 1, "shard": "",
        **{key: env[key] for key in ("tf_version", "keras_version", "python_version",
                                     "cuda_version", "cudnn_version", "device", "gpu_name",
                                     "host", "git_commit")},
        "backend": env.get("backend", "tensorflow"),  # as the runner records it
        "machine_fingerprint": (env.get("machine") or {}).get("fingerprint"),
        "started_utc": start.isoformat(timespec="seconds"),
        "finished_utc": (start + _dt.timedelta(minutes=5)).isoformat(timespec="seconds"),
    }
    if failed:
        return row
    from scipy.stats import binomtest

    final = epoch_rows[-1]
    later = [e["step_ms_median"] for e in epoch_rows[1:]] or [epoch_rows[0]["step_ms_median"]]
    step = float(np.median(later))
    correct = round(test_acc * N_TEST)
    total, trainable = PARAMS[variant]
    row.update({
        "epochs_completed": len(epoch_rows),
        "train_accuracy": final["accuracy"], "val_accuracy": final["val_accuracy"],
        "test_accuracy": correct / N_TEST,
        "overfit_gap": final["accuracy"] - final["val_accuracy"],
        "train_loss": final["loss"], "val_loss": final["val_loss"],
        "test_loss": 0.35 * (1 - test_acc) + 0.1, "test_correct": correct,
        "test_p_value": float(binomtest(correct, N_TEST, 0.5, alternative="greater").pvalue),
        "step_time_ms": step, "step_time_ms_p90": step * 1.12,
        "images_per_sec": BATCH_SIZE / (step / 1000),
        "first_epoch_s": epoch_rows[0]["epoch_s"],
        "train_wall_s": sum(e["epoch_s"] for e in epoch_rows),
        "peak_rss_mb": 2400.0, "gpu_peak_mb": 1800.0 if env["device"] == "gpu" else None,
        "params_total": total, "params_trainable": trainable,
        "params_non_trainable": total - trainable,
    })
    return row


def write_result_set(results_dir: str | Path, *, variants: Iterable[str] = VARIANTS,
                     seeds: Iterable[int] = (0, 1, 2), epochs: int = 5,
                     accuracy: float | Mapping[str, float] | None = None,
                     accuracy_std: float = 0.01,
                     step_ms: float | Mapping[str, float] | None = None,
                     step_noise: float = 0.03, run_noise: float = 0.0,
                     dataset: str = "real", fingerprint: str | None = None,
                     fingerprint_known: bool | None = None, tf_version: str = "2.21.0",
                     keras_version: str = "3.15.1", device: str = "cpu", gpu_name: str = "",
                     limit: int | None = None, data_dir: str | None = None,
                     failed: Iterable[tuple[str, int]] = (), rng: int = 0,
                     machine: dict[str, Any] | None = TEST_MACHINE,
                     contended: Iterable[tuple[str, int]] = ()) -> Path:
    """Write one result set under `results_dir/runs/` and return its folder.

    accuracy: mean final test accuracy (fraction), per variant or for all; each seed draws
    around it with `accuracy_std`. step_ms: the median step time per variant; each epoch's
    median gets relative noise `step_noise`, each run a relative offset `run_noise`.
    failed: (variant, seed) pairs recorded as failed runs. rng seeds all the noise.
    machine: environment.json's machine (None: not recorded); contended: (variant, seed)
    pairs whose epochs lost twice the contended share of the CPUs to others."""
    generator = np.random.default_rng(rng)
    if fingerprint is None:
        fingerprint = KNOWN_FINGERPRINT if dataset == "real" else SYNTHETIC_FINGERPRINT
    if fingerprint_known is None:
        fingerprint_known = fingerprint == KNOWN_FINGERPRINT
    env = environment(tf_version=tf_version, keras_version=keras_version, dataset=dataset,
                      fingerprint=fingerprint, fingerprint_known=fingerprint_known,
                      device=device, gpu_name=gpu_name, data_dir=data_dir, epochs=epochs,
                      machine=machine)
    result_set = ResultSet.create(results_dir, env, now=_next_time())
    failed, contended = set(failed), set(contended)
    for index, (variant, seed) in enumerate((v, s) for v in variants for s in seeds):
        test_acc = float(np.clip(_per_variant(accuracy, DEFAULT_ACCURACY, variant)
                                 + accuracy_std * generator.standard_normal(), 0.0, 1.0))
        step = _per_variant(step_ms, DEFAULT_STEP_MS, variant)
        step *= max(0.2, 1 + run_noise * generator.standard_normal())
        is_failed = (variant, seed) in failed
        epoch_rows = [] if is_failed else _epoch_rows(
            generator, epochs=epochs, train_acc=min(1.0, test_acc + 0.06),
            val_acc=test_acc, step_ms=step, step_noise=step_noise,
            contention=2 * CONTENDED_SHARE if (variant, seed) in contended else 0.02)
        row = _run_row(variant, seed, index, epoch_rows, test_acc=test_acc, env=env,
                       epochs=epochs, limit=limit, failed=is_failed)
        if not is_failed and machine is not None:
            row.update(contention=min(1.0, sum(e["other_cpu_s"] for e in epoch_rows[1:])
                                      / (2 * sum(e["epoch_s"] for e in epoch_rows[1:]))),
                       contended=(variant, seed) in contended)
        result_set.append_run(row, [dict(e, run_id=row["run_id"], variant=variant, seed=seed)
                                    for e in epoch_rows])
    return result_set.path


def copy_result_set(source: str | Path, results_dir: str | Path, *,
                    step_scale: float = 1.0, accuracy_shift: float = 0.0,
                    variants: Iterable[str] | None = None,
                    tf_version: str | None = None,
                    machine: dict[str, Any] | None | str = "same",
                    columns: Mapping[str, Any] | None = None) -> Path:
    """A new result set with the same rows as `source`, except, for `variants` (default
    all): every step time x `step_scale` (images/s / `step_scale`), and test accuracy +
    `accuracy_shift` (a fraction; test_correct follows); with `machine` (facts, or None
    for not recorded) every row on that machine; `columns`: values set in every row and
    in environment.json (e.g. another Keras backend). Written through the real writer."""
    source_set = ResultSet.open(source)
    env = source_set.environment()
    for key in ("schema_version", "result_set", "created_utc"):
        env.pop(key, None)
    if tf_version:
        env["tf_version"] = tf_version
    if machine != "same":
        env["machine"] = machine
    env.update(columns or {})
    target = ResultSet.create(results_dir, env, now=_next_time())
    chosen = set(variants) if variants is not None else None
    epochs = source_set.epochs()
    for row in source_set.runs():
        row = dict(row)
        epoch_rows = [dict(e) for e in epochs if e["run_id"] == row["run_id"]]
        if tf_version:
            row["tf_version"] = tf_version
        if machine != "same":
            row["machine_fingerprint"] = (machine or {}).get("fingerprint", "")
        row.update(columns or {})
        if row["status"] == "ok" and (chosen is None or row["variant"] in chosen):
            for key in ("step_time_ms", "step_time_ms_p90"):
                row[key] = float(row[key]) * step_scale
            row["images_per_sec"] = float(row["images_per_sec"]) / step_scale
            for e in epoch_rows:
                e["step_ms_median"] = float(e["step_ms_median"]) * step_scale
                e["train_s"] = float(e["train_s"]) * step_scale
            correct = round((float(row["test_accuracy"]) + accuracy_shift)
                            * int(row["n_test"]))
            row["test_correct"] = correct
            row["test_accuracy"] = correct / int(row["n_test"])
        for key in ("schema_version", "result_set"):
            row.pop(key)
        for e in epoch_rows:
            e.pop("schema_version")
        target.append_run(row, epoch_rows)
    return target.path

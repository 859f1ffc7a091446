"""`catsdogs probe`: a fast, deterministic fingerprint of each variant's training computation.

Per (variant, seed), on one fixed batch of the real training images:

1. the model is built and compiled exactly as a run builds it (`train.seed_everything`,
   `models.build_model`), and every layer's initial weights are recorded;
2. one forward pass in TRAINING mode, layer by layer (nested Sequentials such as
   data_augmentation are entered, so RandomFlip and RandomRotation are layers of their
   own, drawing from their seeds as in training), recording every layer's output, and
   the gradient of the loss for every layer's weights;
3. a fresh model (built again under the same seed) takes the first N training steps of
   the run's own pipeline (`runner.load_data`: the same shuffled batches as
   `catsdogs run`), recording each step's loss, each step's batch digest, and every
   layer's weights after them.

Where two probes differ is decided by `diff`; the file format is `fileformat`'s.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from catsdogs import __version__
from catsdogs.attribution.fileformat import FORMAT, Recorder, digest, write_probe
from catsdogs.models import build_model, get_variant
from catsdogs.options import BenchOptions

#: The options a probe records and two probes must share to be compared (`diff`).
PROBE_OPTION_KEYS = ("variants", "seeds", "batch_size", "limit", "weights", "deterministic",
                     "synthetic")


# ---------------------------------------------------------------- the machine and software


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """What decides whether two CPU runs can be bit-identical at all: the CPU model and
    its instruction-set flags (oneDNN and Eigen pick kernels by them), the core count
    (thread partitioning of reductions), the architecture and the OS."""
    model, flags = "", []
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = sorted(set(value.split()))
    except OSError:
        pass
    return {"cpu_model": model or platform.processor() or platform.machine(),
            "cpu_flags": flags,
            "cpu_flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest(),
            "cpu_count": os.cpu_count(), "architecture": platform.machine(),
            "system": platform.system()}


def installed_packages() -> dict[str, str]:
    """Every distribution importable here, name -> version: what `bisect` varies, and what
    else (numpy, ml-dtypes, protobuf) came along with it."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            found.setdefault(name, dist.version)
    return dict(sorted(found.items()))


# ---------------------------------------------------------------- one model, layer by layer


def leaf_layers(model, prefix: str = "") -> list[tuple[str, Any]]:
    """(position, layer) for every layer a Sequential calls, entering nested Sequentials
    (`1.1` is the second layer of the second); functional sub-models (the preprocessor,
    model4's MobileNetV2 base) stay one layer each. Positions, not Keras' names (which
    count up per process), are what two probes match layers by."""
    from tensorflow import keras

    found: list[tuple[str, Any]] = []
    for position, layer in enumerate(model.layers):
        index = f"{prefix}{position}"
        if isinstance(layer, keras.Sequential):
            found += leaf_layers(layer, index + ".")
        else:
            found.append((index, layer))
    return found


def layer_weights(layer) -> np.ndarray | None:
    """All of a layer's weights (trainable, then not) as one flat array in Keras' order;
    None for a layer without weights."""
    weights = [np.asarray(w.numpy()).reshape(-1) for w in layer.weights]
    return np.concatenate(weights) if weights else None


def fixed_batch(splits, batch_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The probe's batch: the first training images of each class in the pipeline's own
    seed-independent order, cats and dogs alternating (a batch of one class would leave
    half the loss untested), decoded as training decodes them."""
    from catsdogs.dataset.pipeline import decode_files

    by_label: dict[int, list[str]] = {}
    for path, label in zip(splits.files["train"], splits.labels["train"]):
        by_label.setdefault(label, []).append(path)
    chosen: list[tuple[str, int]] = []
    for rank in range(batch_size):
        for label in sorted(by_label):
            if rank < len(by_label[label]) and len(chosen) < batch_size:
                chosen.append((by_label[label][rank], label))
    files = [path for path, _ in chosen]
    images, _ = decode_files(splits.data_dir, files)
    return images, np.asarray([label for _, label in chosen], np.int32), files


def forward_and_gradients(model, images: np.ndarray, labels: np.ndarray
                          ) -> tuple[list[tuple[str, Any]], list[np.ndarray], float, dict]:
    """One training-mode pass through every leaf layer in order (what Sequential.call does
    in fit), under a GradientTape: (layers, each layer's output, the loss, gradient per
    variable id)."""
    import tensorflow as tf

    layers = leaf_layers(model)
    outputs: list[np.ndarray] = []
    with tf.GradientTape() as tape:
        value = tf.cast(tf.constant(images), tf.float32)  # what the Input layer does
        for _, layer in layers:
            value = layer(value, training=True)
            outputs.append(np.asarray(value))
        loss = model.loss(tf.constant(labels), value)
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    by_id = {id(var): (None if grad is None else np.asarray(grad))
             for var, grad in zip(variables, gradients)}
    return layers, outputs, float(loss), by_id


def layer_gradient(layer, gradients: dict) -> np.ndarray | None:
    """The gradients of one layer's trainable weights, flattened in Keras' order."""
    parts = [gradients.get(id(var)) for var in layer.trainable_weights]
    parts = [part.reshape(-1) for part in parts if part is not None]
    return np.concatenate(parts) if parts else None


def _fresh_model(variant: str, seed: int, options: BenchOptions, build: Callable):
    """The model a run trains, built as `train.train_run` builds it, after a clean Keras
    session (so the first model of each probe gets the first layer names)."""
    from tensorflow import keras

    from catsdogs.training.train import seed_everything

    keras.backend.clear_session()
    seed_everything(seed, deterministic=options.deterministic)
    return build(variant, weights=options.weights, seed=seed)


def _step_losses(model, dataset, steps: int) -> list[float]:
    """The loss Keras reports after each of the first `steps` training steps (its running
    mean over the epoch, as the progress bar shows it), through `fit`'s compiled step."""
    from tensorflow import keras

    losses: list[float] = []

    class _Losses(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float((logs or {}).get("loss", float("nan"))))

    model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
              callbacks=[_Losses()])
    return losses


def _batch_digests(dataset, steps: int) -> list[dict[str, str]]:
    """Digest of each of the first `steps` training batches (images and labels): a data
    order that changed shows here, apart from the model's arithmetic."""
    return [{"images": digest(np.asarray(images)), "labels": digest(np.asarray(labels))}
            for images, labels in dataset.take(steps)]


def probe_variant(prepared, variant: str, seed: int, steps: int, recorder: Recorder,
                  build: Callable = build_model) -> dict[str, Any]:
    """The probe entry of one (variant, seed); `build` is models.build_model (a test
    passes one that plants a difference)."""
    from catsdogs.training.runner import load_data

    options = prepared.options
    started = time.perf_counter()
    splits = load_data(prepared, seed)
    images, labels, files = fixed_batch(splits, options.batch_size)
    model = _fresh_model(variant, seed, options, build)
    initial = {index: layer_weights(layer) for index, layer in leaf_layers(model)}
    layers, outputs, loss, gradients = forward_and_gradients(model, images, labels)
    train_batches = -(-splits.count("train") // options.batch_size)
    done = min(steps, train_batches)
    batches = _batch_digests(splits.train, done)  # its first pass: the order fit sees
    trained = _fresh_model(variant, seed, options, build)
    losses = _step_losses(trained, load_data(prepared, seed).train, done)
    final = {index: layer_weights(layer) for index, layer in leaf_layers(trained)}
    prefix = f"{variant}/s{seed}"
    entry = {
        "variant": variant, "alias": get_variant(variant).alias, "seed": seed,
        "input": recorder.measure(f"{prefix}/input", images), "labels": labels.tolist(),
        "batch_files": files, "loss": loss,
        "layers": [recorder.layer(prefix, index, layer.name, type(layer).__name__, {
            "initial_weights": initial[index], "forward": output,
            "gradient": layer_gradient(layer, gradients), "final_weights": final[index]})
            for (index, layer), output in zip(layers, outputs)],
        "steps": {"requested": steps, "done": len(losses), "losses": losses,
                  "batches": batches},
        "initial_weights_sha256": _weights_digest(model),
        "final_weights_sha256": _weights_digest(trained),
        "seconds": round(time.perf_counter() - started, 3),
    }
    from tensorflow import keras

    del model, trained
    keras.backend.clear_session()
    return entry


def _weights_digest(model) -> str:
    """One digest over every weight of the model, in Keras' order."""
    combined = hashlib.sha256()
    for weight in model.weights:
        combined.update(digest(np.asarray(weight.numpy())).encode())
    return combined.hexdigest()


# ---------------------------------------------------------------- the whole probe


def _prepare(options: BenchOptions, progress):
    """The session's checks and data, through the runner's own `prepare` (the dataset,
    --limit, model4's weights, every image decoded once, provenance). No result set is
    written: its results-folder check is pointed at a temporary folder."""
    from catsdogs.training import runner

    with tempfile.TemporaryDirectory(prefix="catsdogs-probe-") as tmp:
        return runner.prepare(dataclasses.replace(options, resume=None, shard=None,
                                                  results_dir=str(Path(tmp) / "results")),
                              progress)


def probe_meta(prepared, steps: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The file's JSON: format, options, data, provenance, machine and the entries."""
    options, environment = prepared.options, prepared.environment
    recorded = {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in dataclasses.asdict(options).items()
                if key in PROBE_OPTION_KEYS}
    return {
        "format": FORMAT, "catsdogs_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["catsdogs", *sys.argv[1:]],
        "options": {**recorded, "steps": steps},
        "data": {key: environment.get(key) for key in (
            "dataset", "data_dir", "dataset_fingerprint", "dataset_fingerprint_known",
            "dataset_changes", "skipped_images")},
        "provenance": {**{key: value for key, value in environment.items()
                          if key not in ("options", "skipped_images")},
                       "packages": installed_packages()},
        "machine": cpu_facts(),
        "probes": entries,
    }


def run_probe(options: BenchOptions, steps: int, out: Path,
              progress: Callable[[str], None] | None = None,
              build: Callable = build_model) -> dict[str, Any]:
    """Probe every (variant, seed) of `options` and write the probe file `out` (checked
    to be new by the caller before anything ran). Returns the file's JSON."""
    say = progress or (lambda line: None)
    prepared = _prepare(options, progress)
    recorder = Recorder()
    entries = []
    for variant in options.variants:
        for seed in options.seeds:
            entry = probe_variant(prepared, variant, seed, steps, recorder, build)
            say(f"probe {get_variant(variant).alias} ({variant}) seed {seed}: "
                f"{len(entry['layers'])} layers, {entry['steps']['done']} step(s), "
                f"{entry['seconds']:.1f}s")
            entries.append(entry)
    meta = probe_meta(prepared, steps, entries)
    write_probe(out, meta, recorder.arrays)
    return meta


def summary_lines(meta: dict[str, Any]) -> list[str]:
    """One line per probed (variant, seed), for the terminal after the file is written."""
    return [f"{entry['alias']} ({entry['variant']}) seed {entry['seed']}: "
            f"{len(entry['layers'])} layers, loss {entry['loss']!r}, "
            f"{entry['steps']['done']} step(s), weights after them "
            f"{entry['final_weights_sha256'][:12]}" for entry in meta["probes"]]

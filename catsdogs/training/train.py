"""Seeded training of one (variant, seed), with honest timing.

`train_run` builds the model under the run's seed, fits it for N epochs, evaluates the
fixed test split and returns every metric a result row needs. Timing: a callback stamps
`time.perf_counter()` at the start and end of every training step; the step's loss is
read back to the host at its end (what Keras' own progress bar does on every step), so on
a GPU the time covers the kernels, not only their launch. `step_time_ms` is the median
step over epochs 2..N: epoch 1 holds tracing and autotuning and is reported on its own as
`first_epoch_s`. Validation time is excluded from step times. Beside each epoch's wall
time the same callback records the CPU time this process, other processes and the
hypervisor took (catsdogs.training.contention), so a run timed on a busy machine says so.

The same code trains on every Keras backend (catsdogs.backend): the loss is read back
with `float()` on each (on JAX and PyTorch that waits for the device too), and the few
TensorFlow-only parts (tf.distribute, op determinism, TF's GPU allocator) have their
backend's counterpart or are refused by the options before a run starts.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import time
from typing import Any, Callable

import numpy as np

from catsdogs.backend import (
    active_backend,
    gpu_peak_mb,
    keras_module,
    make_deterministic,
    uses_tensorflow,
)
from catsdogs.constants import BATCH_SIZE
from catsdogs.errors import UsageError
from catsdogs.models import build_model, get_variant, parameter_counts, resolve_weights
from catsdogs.progress import epoch_line
from catsdogs.training.contention import (
    EPOCH_FIELDS,
    Sample,
    epoch_usage,
    run_contention,
    take_sample,
)
from catsdogs.training.machine import usable_cpus


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run is stopped and recorded as failed."""


class XlaUnavailable(RuntimeError):
    """--xla was asked for, but Keras would quietly train without it (a layer without XLA
    support, or op determinism on): the run is recorded as failed, not as an XLA run."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How one run trains; the defaults are the post's."""

    epochs: int = 20
    batch_size: int = BATCH_SIZE
    weights: str = "imagenet"
    deterministic: bool = False
    mixed_precision: bool = False
    xla: bool = False
    strategy: str = "default"
    timing: bool = True  # per-step timing callback; off only to measure what it costs

    def __post_init__(self) -> None:
        """Epochs, batch size and strategy arrive checked by options.resolve (their one
        check); only the rule that joins two options is checked here."""
        if self.xla and self.deterministic:
            raise UsageError("--xla and --deterministic: Keras trains without XLA while op "
                             "determinism is on; expected one or the other")


# ---------------------------------------------------------------- seeding


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Python, NumPy, the backend's and Keras' seeds; deterministic kernels when asked.
    Layers with randomness get their own explicit seeds in the model builders."""
    keras_module().utils.set_random_seed(seed)
    if deterministic:
        make_deterministic(active_backend())


# ---------------------------------------------------------------- callbacks


class StepTimer:
    """Per-step and per-epoch wall times, per-epoch CPU use (this process, others, steal,
    on the CPUs in `cpus`), and a guard that stops on a NaN/inf loss.

    Built lazily as a keras.callbacks.Callback subclass (see `make_callbacks`) so this
    module imports without TensorFlow."""

    def __init__(self, timing: bool = True, cpus: list[int] | None = None) -> None:
        self.timing = timing
        self.cpus = usable_cpus() if cpus is None else cpus  # whose contention is measured
        self.step_ms: list[list[float]] = []  # per epoch, per step
        self.epoch_s: list[float] = []  # whole epoch, validation included
        self.train_s: list[float] = []  # training steps only
        self.usage: list[dict[str, float | None]] = []  # per epoch: contention.EPOCH_FIELDS
        self.diverged: str | None = None
        self._epoch_start = self._step_start = self._train_end = 0.0
        self._sample: Sample | None = None


def make_callbacks(timer: StepTimer, progress: Callable[[str], None] | None, epochs: int):
    """The Keras callback that fills `timer`, and prints one line per epoch to
    `progress` (for logs and CI, where a progress bar is noise)."""
    keras = keras_module()

    class _Callback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            timer.step_ms.append([])
            timer._sample = take_sample(timer.cpus)
            timer._epoch_start = time.perf_counter()
            timer._train_end = timer._epoch_start

        def on_train_batch_begin(self, batch, logs=None):
            timer._step_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = float(logs["loss"]) if logs and "loss" in logs else float("nan")
            now = time.perf_counter()
            timer.step_ms[-1].append((now - timer._step_start) * 1000.0)
            timer._train_end = now
            if not math.isfinite(loss):
                timer.diverged = (f"loss became {loss} at epoch {len(timer.step_ms)}, "
                                  f"step {batch + 1}")
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            timer.usage.append(epoch_usage(timer._sample, take_sample(timer.cpus)))
            timer.epoch_s.append(now - timer._epoch_start)
            timer.train_s.append(timer._train_end - timer._epoch_start)
            logs = logs or {}
            for key in ("loss", "val_loss"):
                if key in logs and not math.isfinite(float(logs[key])) and not timer.diverged:
                    timer.diverged = f"{key} became {float(logs[key])} at epoch {epoch + 1}"
                    self.model.stop_training = True
            if progress:
                progress(epoch_line(epoch + 1, epochs, logs, timer.epoch_s[-1]))

    class _EpochOnly(keras.callbacks.Callback):
        """Without per-step hooks: epoch times only (to measure the step timer's cost)."""

        def on_epoch_begin(self, epoch, logs=None):
            timer.step_ms.append([])
            timer._epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            timer.epoch_s.append(time.perf_counter() - timer._epoch_start)
            timer.train_s.append(float("nan"))
            if logs and not math.isfinite(float(logs.get("loss", 0.0))):
                timer.diverged = f"loss became {logs['loss']} at epoch {epoch + 1}"
                self.model.stop_training = True

    return _Callback() if timer.timing else _EpochOnly()


# ---------------------------------------------------------------- statistics


def binomial_p_value(correct: int, total: int, p: float = 0.5) -> float:
    """One-sided exact binomial test: P(X >= correct) for X ~ Bin(total, p), i.e. how
    likely a coin-flip classifier gets at least this many test images right."""
    if total <= 0:
        return float("nan")
    from scipy.stats import binomtest

    return float(binomtest(correct, total, p, alternative="greater").pvalue)


def step_statistics(step_ms: list[list[float]], batch_size: int) -> dict[str, float | None]:
    """Median and p90 step time over epochs 2..N (all epochs when there is only one),
    and the images/s that the median implies."""
    later = [t for epoch in step_ms[1:] for t in epoch] or [t for epoch in step_ms for t in epoch]
    if not later:
        return {"step_time_ms": None, "step_time_ms_p90": None, "images_per_sec": None}
    median = float(np.median(later))
    return {"step_time_ms": median, "step_time_ms_p90": float(np.percentile(later, 90)),
            "images_per_sec": batch_size / (median / 1000.0) if median > 0 else None}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gpu_peak_mb(reset: bool = False) -> float | None:
    """Peak device memory on GPU:0 since the last reset; None without a GPU."""
    if not uses_tensorflow():
        return gpu_peak_mb(active_backend(), reset)
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    try:
        if reset:
            tf.config.experimental.reset_memory_stats("GPU:0")
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    except (ValueError, RuntimeError):
        return None


# ---------------------------------------------------------------- one run


class _OneDevice:
    """What jax and torch runs train under: one device (the options refuse --strategy
    mirrored there), shaped like a tf.distribute strategy for the code below."""

    num_replicas_in_sync = 1

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def _strategy(name: str):
    if not uses_tensorflow():
        return _OneDevice()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.get_strategy()


def all_layers(layer) -> list:
    """`layer` and every layer nested in it, through the public `.layers` of models
    (model4 nests MobileNetV2, the augmentation and the preprocessor as models)."""
    found = [layer]
    for sub in getattr(layer, "layers", ()):
        found += all_layers(sub)
    return found


def _no_xla_reason(model, name: str) -> str:
    """Why Keras turned jit_compile off (it only warns, then trains without XLA)."""
    layers = [layer.name for layer in all_layers(model) if not layer.supports_jit]
    why = (f"layer {', '.join(layers)} does not support XLA" if layers
           else "TensorFlow op determinism is on in this process")
    return f"--xla: Keras would train {name} without XLA ({why})"


def _evaluate_test(model, dataset) -> tuple[float, int, int]:
    """(mean loss, correct, total) on the test split in one pass over it: the loss with
    the model's own loss function, accuracy from its argmax predictions."""
    to_numpy = keras_module().ops.convert_to_numpy  # a device tensor of any backend
    loss_sum = 0.0
    correct = total = 0
    for images, labels in dataset:
        logits = model(images, training=False)
        per_example = model.loss(labels, logits) * int(labels.shape[0])
        loss_sum += float(to_numpy(per_example))
        predicted = np.argmax(to_numpy(logits), axis=-1)
        correct += int(np.sum(predicted == np.asarray(labels)))
        total += int(labels.shape[0])
    return (loss_sum / total if total else float("nan")), correct, total


def train_run(variant: str, splits, *, seed: int, config: TrainConfig = TrainConfig(),
              progress: Callable[[str], None] | None = None,
              keras_verbose: int = 0, extra_callbacks: tuple = ()) -> dict[str, Any]:
    """Train one variant under one seed and return its metrics.

    The returned dict holds the run row's metric fields plus `epochs` (a list of per-epoch
    dicts). A diverged loss raises TrainingDiverged after training stops; other errors
    propagate to the caller, which records them."""
    keras = keras_module()
    name = get_variant(variant).name
    seed_everything(seed, deterministic=config.deterministic)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        strategy = _strategy(config.strategy)
        with strategy.scope():
            # TensorFlow: XLA only with --xla; elsewhere Keras' own choice ("auto": jax.jit
            # on JAX, eager on PyTorch), since jit_compile=False would run JAX eagerly.
            model = build_model(name, weights=config.weights, seed=seed,
                                jit_compile=config.xla if uses_tensorflow() else "auto")
        if config.xla and not model.jit_compile:
            raise XlaUnavailable(_no_xla_reason(model, name))
        counts = parameter_counts(model)
        timer = StepTimer(timing=config.timing)
        _gpu_peak_mb(reset=True)
        start = time.perf_counter()
        history = model.fit(splits.train, epochs=config.epochs, validation_data=splits.validation,
                            callbacks=[make_callbacks(timer, progress, config.epochs),
                                       *extra_callbacks],  # the speed benchmark's probes
                            shuffle=False, verbose=keras_verbose)  # the pipeline shuffles
        wall = time.perf_counter() - start
    finally:
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy("float32")
    if timer.diverged:
        raise TrainingDiverged(timer.diverged)
    test_loss, correct, total = _evaluate_test(model, splits.test)
    test_acc = correct / total if total else float("nan")
    hist = history.history
    epochs = [{"epoch": i + 1, "loss": hist["loss"][i], "accuracy": hist["accuracy"][i],
               "val_loss": hist["val_loss"][i], "val_accuracy": hist["val_accuracy"][i],
               "epoch_s": timer.epoch_s[i], "train_s": timer.train_s[i],
               "steps": len(timer.step_ms[i]),
               "step_ms_median": float(np.median(timer.step_ms[i])) if timer.step_ms[i] else None,
               **(timer.usage[i] if i < len(timer.usage) else dict.fromkeys(EPOCH_FIELDS))}
              for i in range(len(hist["loss"]))]
    contention, contended = run_contention(epochs, len(timer.cpus))
    final = epochs[-1]
    weights_path = resolve_weights(config.weights, download=False) \
        if get_variant(name).uses_weights else None
    result = {
        "variant": name, "alias": get_variant(name).alias, "seed": seed,
        "epochs_completed": len(epochs),
        "train_accuracy": final["accuracy"], "val_accuracy": final["val_accuracy"],
        "test_accuracy": float(test_acc), "overfit_gap": final["accuracy"] - final["val_accuracy"],
        "train_loss": final["loss"], "val_loss": final["val_loss"], "test_loss": float(test_loss),
        "test_correct": correct, "n_test_evaluated": total,
        "test_p_value": binomial_p_value(correct, total),
        "first_epoch_s": timer.epoch_s[0], "train_wall_s": wall,
        "peak_rss_mb": peak_rss_mb(), "gpu_peak_mb": _gpu_peak_mb(),
        "replicas": strategy.num_replicas_in_sync,
        "contention": contention, "contended": contended,
        "pretrained": weights_path is not None,
        "epochs": epochs,
        **counts,
        **step_statistics(timer.step_ms, config.batch_size),
    }
    del model
    keras.backend.clear_session()
    return result

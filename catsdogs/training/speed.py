"""`catsdogs speed`: what the decode-once input pipeline buys, measured in one process on
the same files.

(a) input throughput (images/s) of the post's pipeline,
    `image_dataset_from_directory(train_dir, shuffle=True, batch_size=32,
    image_size=(160, 160)).prefetch(AUTOTUNE)`, against ours (the cached train dataset of
    `load_splits`), each iterated fully: the first pass, which decodes (our decode cache
    is cleared before it; the operating system's file cache is not), and the median of
    the later passes. Ours must decode at least as fast as the post's first pass
    (FIRST_PASS_TARGET), or the decode-once pipeline would cost more than it saves;
(b) epoch time (training + validation) of each variant with each pipeline: four runs,
    post/ours/ours/post, each of one warm-up epoch and N timed ones; the median of each
    pipeline's 2N timed epochs, and ours/post;
(c) model1's epoch time with XLA (jit_compile) against without, on our pipeline;
(d) what the per-step timing callback costs: model1 trained with TrainConfig(timing=True)
    and timing=False, same seed and data, runs on/off/off/on twice, compared in wall time
    and in this process's CPU time per epoch (judged, as the median over pairs of
    neighbouring on/off runs: other processes hardly move it), plus the
    callback's own cost per step (through Keras' CallbackList) timed directly.

Training uses the session's --batch-size, --weights, --mixed-precision and --strategy;
--xla and --deterministic do not apply ((c) toggles XLA itself, and op determinism would
slow some ops down and turn XLA off). The figures are for --seeds' first seed.

On --backend jax or torch, ours is the NumPy pipeline those backends train from, the
post's is still tf.data (so TensorFlow must be installed beside them), and (c) is not
measured: jit_compile is TensorFlow's (JAX compiles every step with XLA anyway).

The post's pipeline always reads a folder of symbolic links to exactly the files our
splits use (same train/validation class layout), so with --limit both read the same
images. Its validation set is our validation split read that way; the test split is
evaluated after training, outside the timed epochs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from catsdogs.backend import BACKENDS, keras_module, uses_tensorflow
from catsdogs.options import OPTIONS_BY_NAME, BenchOptions
from catsdogs.training.machine import summary

#: --speed-epochs / CATSDOGS_SPEED_EPOCHS, declared in the options registry.
DEFAULT_SPEED_EPOCHS = OPTIONS_BY_NAME["speed_epochs"].default
DEFAULT_VARIANTS = ("baseline_cnn", "preprocessed_cnn")  # model1 and model3
LATER_PASSES = 2  # input passes timed after the first one
ABBA = (0, 1, 1, 0)  # the order of the runs of two settings compared: drift hits both alike
TIMING_STEPS = 10  # training steps per epoch in the timing-overhead runs
TIMING_EPOCHS = 4  # timed epochs per timing-overhead run, after its warm-up epoch
TIMING_ABBAS = 2  # timing-overhead runs: on off off on, this many times
CALLBACK_STEPS = 2000  # steps driven through the callback to time it directly
INPUT_TARGET = 20.0  # ours/post images/s, at least
FIRST_PASS_TARGET = 1.0  # ours/post images/s of the first pass (the one-time decode), at least
EPOCH_TARGET = 0.9  # ours/post epoch time, at most
TIMING_TARGET_PCT = 2.0  # timing callback overhead, below

Progress = Callable[[str], None] | None


def _say(progress: Progress, line: str) -> None:
    if progress:
        progress(line)


def speed_variants(options: BenchOptions) -> tuple[str, ...]:
    """The variants whose epochs are timed: those named with --variants, or model1 and
    model3 when --variants is left at 'all' (its default)."""
    from catsdogs.models import VARIANTS

    return DEFAULT_VARIANTS if tuple(options.variants) == tuple(VARIANTS) else options.variants


# ---------------------------------------------------------------- the post's pipeline


def link_post_layout(data_dir: Path, files: dict[str, list[str]], dest: Path) -> Path:
    """`dest/<split>/<class>/<name>` for the train and validation splits: symbolic links
    to the files of `files` (paths relative to data_dir, as Splits.files holds them)."""
    for split in ("train", "validation"):
        for rel in files[split]:
            link = dest / split / Path(*Path(rel).parts[1:])  # drop train/ or validation/
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((Path(data_dir) / rel).resolve())
    return dest


def post_dataset(directory: Path, *, batch_size: int):
    """The post's pipeline over one folder. Keras' 'Found N files' line is kept off
    stdout, where the table goes; `file_paths` survives the prefetch."""
    import tensorflow as tf

    from catsdogs.constants import IMAGE_SIZE

    keras = keras_module()

    with contextlib.redirect_stdout(io.StringIO()):
        dataset = keras.utils.image_dataset_from_directory(
            directory, shuffle=True, batch_size=batch_size, image_size=IMAGE_SIZE)
    prefetched = dataset.prefetch(buffer_size=tf.data.AUTOTUNE)
    prefetched.file_paths = dataset.file_paths
    return prefetched


def post_splits(splits, layout: Path, batch_size: int):
    """`splits` with train and validation read by the post's pipeline from `layout`."""
    return dataclasses.replace(splits, train=post_dataset(layout / "train", batch_size=batch_size),
                               validation=post_dataset(layout / "validation",
                                                       batch_size=batch_size))


# ---------------------------------------------------------------- (a) input throughput


def pass_rate(dataset, setup_s: float = 0.0) -> float:
    """Images per second of one full pass over `dataset` (plus `setup_s` spent before)."""
    start = time.perf_counter()
    count = sum(int(images.shape[0]) for images, _ in dataset)
    return count / (setup_s + time.perf_counter() - start)


def _first_and_later(dataset, setup_s: float = 0.0) -> tuple[float, float]:
    first = pass_rate(dataset, setup_s)
    return first, statistics.median(pass_rate(dataset) for _ in range(LATER_PASSES))


def input_throughput(prepared, splits, layout: Path) -> dict[str, float]:
    """(a): images/s of both pipelines over the train split, first pass and later ones."""
    from catsdogs.dataset.pipeline import clear_decode_cache, decode_files, split_batches

    batch_size = prepared.options.batch_size
    post_first, post_later = _first_and_later(post_dataset(layout / "train",
                                                           batch_size=batch_size))
    clear_decode_cache()
    start = time.perf_counter()
    images, _ = decode_files(prepared.data_dir, splits.files["train"])
    ours = split_batches(images, splits.labels["train"], batch_size=batch_size,
                         shuffle_seed=splits.seed)
    ours_first, ours_later = _first_and_later(ours, time.perf_counter() - start)
    return {"post_first_pass_ips": post_first, "post_later_pass_ips": post_later,
            "ours_first_pass_ips": ours_first, "ours_later_pass_ips": ours_later,
            "first_pass_ratio": ours_first / post_first, "input_ratio": ours_later / post_later}


# ---------------------------------------------------------------- (b)-(d) training


def _config(options: BenchOptions, epochs: int):
    """The session's training settings, without XLA ((c) alone toggles it) and without
    op determinism (which slows some ops and turns XLA off)."""
    from catsdogs.training.train import TrainConfig

    return TrainConfig(epochs=1 + epochs, batch_size=options.batch_size,
                       weights=options.weights, mixed_precision=options.mixed_precision,
                       strategy=options.strategy)


def timed_epochs(result: dict[str, Any]) -> list[float]:
    """A train_run result's epoch times (training + validation) after the warm-up epoch."""
    return [epoch["epoch_s"] for epoch in result["epochs"][1:]]


def interleaved(run: Callable[[str], dict[str, Any]], sides: tuple[str, str], label: str,
                progress: Progress = None, order: tuple[int, ...] = ABBA
                ) -> dict[str, list[dict[str, Any]]]:
    """train_run results of two settings, run in `order` (A B B A: a drift in the
    machine's load hits both sides alike): side -> its results, in run order."""
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for index, which in enumerate(order, 1):
        side = sides[which]
        _say(progress, f"{label}, {side} ({index}/{len(order)})")
        results[side].append(run(side))
    return results


def ratios(results: dict[str, list[dict[str, Any]]],
           epochs: Callable[[dict[str, Any]], list[float]] = timed_epochs) -> dict[str, float]:
    """Per side, the median of all its timed epochs; `noise`: how far apart runs of the
    same side came out (relative spread of their medians), what the machine resolves."""
    medians, noise = {}, 0.0
    for side, runs in results.items():
        per_run = [statistics.median(epochs(result)) for result in runs]
        medians[side] = statistics.median(t for result in runs for t in epochs(result))
        noise = max(noise, (max(per_run) - min(per_run)) / statistics.median(per_run))
    return {**medians, "noise": noise}


def cpu_probe():
    """A Keras callback whose `epoch_cpu_s` gets this process's CPU time (all threads) per
    epoch: unlike wall time, it hardly moves when other processes share the CPU."""
    keras = keras_module()

    class CpuProbe(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_cpu_s: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_cpu_s.append(time.process_time() - self._start)

    return CpuProbe()


def callback_cost_us(steps: int = CALLBACK_STEPS) -> float:
    """Microseconds per step that the timing callback adds, driven through Keras'
    CallbackList with the logs a training step hands it."""
    from catsdogs.training.train import StepTimer, make_callbacks

    keras = keras_module()
    callbacks = keras.callbacks.CallbackList([make_callbacks(StepTimer(True), None, 1)])
    logs = {"loss": keras.ops.convert_to_tensor(0.5),
            "accuracy": keras.ops.convert_to_tensor(0.5)}
    callbacks.on_epoch_begin(0)
    start = time.perf_counter()
    for step in range(steps):
        callbacks.on_train_batch_begin(step)
        callbacks.on_train_batch_end(step, logs)
    return (time.perf_counter() - start) / steps * 1e6


def pipeline_epochs(variant: str, new_splits: Callable[[], Any], layout: Path, *, seed: int,
                    config, progress: Progress = None) -> dict[str, Any]:
    """(b): one variant's epoch times with the post's pipeline and with ours."""
    from catsdogs.models import get_variant
    from catsdogs.training.train import train_run

    def run(pipeline: str) -> dict[str, Any]:
        splits = new_splits()
        if pipeline == "post":
            splits = post_splits(splits, layout, config.batch_size)
        return train_run(variant, splits, seed=seed, config=config)

    alias = get_variant(variant).alias
    times = ratios(interleaved(run, ("post", "ours"), f"{alias} epochs", progress))
    return {f"{alias}_post_epoch_s": times["post"], f"{alias}_ours_epoch_s": times["ours"],
            f"{alias}_epoch_ratio": times["ours"] / times["post"],
            f"{alias}_epoch_noise_pct": 100.0 * times["noise"]}


def xla_effect(new_splits: Callable[[], Any], measured: float | None, *, seed: int, config,
               progress: Progress = None) -> dict[str, Any]:
    """(c): model1 on our pipeline with and without XLA; an XLA failure is reported, not
    raised. `measured`: model1's epoch time without XLA, when (b) measured it already."""
    from catsdogs.training.train import train_run

    times: dict[bool, float] = {} if measured is None else {False: measured}
    for xla in (False, True):
        if xla in times:
            continue
        _say(progress, f"model1 epochs, our pipeline, {'with' if xla else 'without'} XLA")
        try:
            result = train_run("baseline_cnn", new_splits(), seed=seed,
                               config=dataclasses.replace(config, xla=xla))
        except Exception as exc:  # XLA may be missing or fail on this device: say so
            return {"xla_error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    if str(exc) else type(exc).__name__,
                    "model1_noxla_epoch_s": times.get(False)}
        times[xla] = statistics.median(timed_epochs(result))
    return {"model1_noxla_epoch_s": times[False], "model1_xla_epoch_s": times[True],
            "xla_ratio": times[True] / times[False]}


def timing_overhead(new_splits: Callable[[], Any], *, seed: int, config,
                    progress: Progress = None) -> dict[str, float]:
    """(d): model1 with and without the per-step timing callback, on the first
    TIMING_STEPS batches of the train split and one validation batch (so validation does
    not dilute the difference), TIMING_EPOCHS timed epochs per run, runs A B B A repeated
    TIMING_ABBAS times. Both the wall time and this process's CPU time per epoch are
    compared; the figure judged is the median, over on/off pairs of neighbouring runs, of
    the CPU-time difference: on a shared machine the wall time mostly measures the others."""
    from catsdogs.training.train import train_run

    def run(side: str) -> dict[str, Any]:
        splits, probe = new_splits(), cpu_probe()
        short = dataclasses.replace(splits, train=splits.train.take(TIMING_STEPS),
                                    validation=splits.validation.take(1))
        result = train_run("baseline_cnn", short, seed=seed, config=dataclasses.replace(
            config, epochs=1 + TIMING_EPOCHS, timing=side == "on"), extra_callbacks=(probe,))
        return dict(result, steps_per_epoch=len(short.train), cpu_s=probe.epoch_cpu_s[1:])

    results = interleaved(run, ("on", "off"), "timing callback", progress, ABBA * TIMING_ABBAS)
    times, cpu = ratios(results), ratios(results, lambda result: result["cpu_s"])
    # Each run of one side next to a run of the other: the ratio within such a pair is
    # free of slow changes in the machine's load; the median of the pairs is judged.
    pairs = [100.0 * (statistics.median(on["cpu_s"]) / statistics.median(off["cpu_s"]) - 1.0)
             for on, off in zip(results["on"], results["off"])]
    step_ms = statistics.median(result["step_time_ms"] for result in results["on"])
    cost_us = callback_cost_us()
    return {"timing_on_epoch_s": times["on"], "timing_off_epoch_s": times["off"],
            "timing_wall_pct": 100.0 * (times["on"] / times["off"] - 1.0),
            "timing_wall_noise_pct": 100.0 * times["noise"],
            "timing_on_cpu_s": cpu["on"], "timing_off_cpu_s": cpu["off"],
            "timing_cpu_pct": 100.0 * (cpu["on"] / cpu["off"] - 1.0),
            "timing_noise_pct": 100.0 * cpu["noise"],
            "timing_overhead_pct": statistics.median(pairs),
            "timing_pairs_pct": " ".join(f"{pct:+.2f}" for pct in pairs),
            "timing_epochs_each": sum(len(timed_epochs(r)) for r in results["on"]),
            "timing_steps_per_epoch": results["on"][0]["steps_per_epoch"],
            "timing_step_ms": step_ms, "timing_callback_us_per_step": cost_us,
            "timing_direct_pct": 100.0 * cost_us / (1000.0 * step_ms)}


def epoch_times(prepared, variants, layout: Path, *, seed: int, epochs: int,
                progress: Progress = None) -> dict[str, Any]:
    """(b) epoch time per variant and pipeline, (c) model1 with XLA toggled and (d) the
    timing callback's cost."""
    from catsdogs.training.runner import load_data

    config = _config(prepared.options, epochs)

    def ours():  # fresh datasets for every run: a dataset carries its reshuffle state
        return load_data(prepared, seed)

    figures: dict[str, Any] = {}
    for variant in variants:
        figures.update(pipeline_epochs(variant, ours, layout, seed=seed, config=config,
                                       progress=progress))
    if uses_tensorflow():
        figures.update(xla_effect(ours, figures.get("model1_ours_epoch_s"), seed=seed,
                                  config=config, progress=progress))
    else:
        figures["xla_not_measured"] = (f"not measured on {prepared.options.backend}: "
                                       "jit_compile is TensorFlow's")
    figures.update(timing_overhead(ours, seed=seed, config=config, progress=progress))
    return figures


# ---------------------------------------------------------------- the whole benchmark


def measure_speed(options: BenchOptions, progress: Progress = None,
                  epochs: int = DEFAULT_SPEED_EPOCHS) -> dict[str, Any]:
    """Every figure of the speed benchmark, as a flat dict (pytest's extra_info takes it
    as is); `render_speed` turns it into the table."""
    from catsdogs.errors import UsageError
    from catsdogs.training import runner

    if not isinstance(epochs, int) or epochs <= 0:
        raise UsageError(f"--speed-epochs: expected a positive integer, got {epochs!r}")
    if options.backend != BACKENDS[0] and importlib.util.find_spec("tensorflow") is None:
        raise UsageError(f"speed --backend {options.backend}: the post's pipeline it is "
                         "measured against is tf.data, and TensorFlow is not installed; "
                         "expected TensorFlow beside it, or catsdogs run for step times")
    variants, seed = speed_variants(options), options.seeds[0]
    with tempfile.TemporaryDirectory(prefix="catsdogs-speed-") as tmp:
        # No result set is written: prepare's results-folder check goes to the temp folder.
        prepared = runner.prepare(dataclasses.replace(
            options, variants=variants, seeds=(seed,), resume=None,
            results_dir=str(Path(tmp) / "results")), progress)
        splits = runner.load_data(prepared, seed)
        figures = _setting(prepared, splits, variants, seed, epochs)
        layout = link_post_layout(prepared.data_dir, splits.files, Path(tmp) / "post")
        _say(progress, "input throughput: post's pipeline, then ours")
        figures.update(input_throughput(prepared, splits, layout))
        figures.update(epoch_times(prepared, variants, layout, seed=seed, epochs=epochs,
                                   progress=progress))
    return figures


def _setting(prepared, splits, variants, seed: int, epochs: int) -> dict[str, Any]:
    """What the figures were measured on, for the header and extra_info."""
    options, env = prepared.options, prepared.environment
    return {"data_dir": str(prepared.data_dir), "dataset": prepared.dataset,
            "limit": options.limit, "n_train": splits.count("train"),
            "n_validation": splits.count("validation"), "batch_size": options.batch_size,
            "seed": seed, "speed_epochs": epochs, "variants": ",".join(variants),
            "mixed_precision": options.mixed_precision, "strategy": options.strategy,
            **{key: env.get(key, "") for key in ("tf_version", "keras_version", "device",
                                                  "gpu_name", "git_commit", "backend",
                                                  "jax_version", "torch_version")},
            "machine": summary(env.get("machine")),
            "machine_fingerprint": (env.get("machine") or {}).get("fingerprint", "")}


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _row(label: str, *cells: str) -> str:
    """One fixed-width line: a 44-character label, then right-aligned 11-character cells."""
    return f"{label:<44}" + "".join(f"{cell:>11}" for cell in cells)


def _header(f: dict[str, Any]) -> list[str]:
    device = f["device"] + (f" ({f['gpu_name']})" if f.get("gpu_name") else "")
    return [(f"catsdogs speed: {f['data_dir']} ({f['dataset']}, {f['n_train']} train / "
             f"{f['n_validation']} validation images, limit {f['limit'] or 'none'})"),
            (f"{_software(f)}, Keras {f['keras_version']}, {device}, batch "
             f"{f['batch_size']}, seed {f['seed']}, mixed precision "
             f"{'on' if f['mixed_precision'] else 'off'}, strategy {f['strategy']}"),
            (f"epoch times: 2 runs per setting (order A B B A) of 1 warm-up + "
             f"{f['speed_epochs']} timed epoch(s); median of each setting's timed epochs"),
            "noise: spread between runs of one setting; smaller differences are not resolved",
            f"machine: {f['machine']}"]


def _software(f: dict[str, Any]) -> str:
    """'TensorFlow 2.21.0', or the backend that trained: 'jax 0.10.2', 'torch 2.13.0'."""
    backend = f.get("backend") or BACKENDS[0]
    if backend == BACKENDS[0]:
        return f"TensorFlow {f['tf_version']}"
    return f"Keras backend {backend} {f.get(backend + '_version', '')}"


def _table(f: dict[str, Any], aliases: list[str]) -> list[str]:
    from catsdogs.models import get_variant

    lines = ["", _row("input pipeline, train split (images/s)", "post", "ours", "ours/post"),
             _row("  first pass (decodes)", f"{f['post_first_pass_ips']:.1f}",
                  f"{f['ours_first_pass_ips']:.1f}",
                  f"{f['first_pass_ratio']:.2f}x"),
             _row(f"  later passes (median of {LATER_PASSES})", f"{f['post_later_pass_ips']:.1f}",
                  f"{f['ours_later_pass_ips']:.1f}", f"{f['input_ratio']:.1f}x"),
             "", _row("epoch time, training + validation (s)", "post", "ours", "ours/post",
                      "noise")]
    lines += [_row(f"  {alias} {get_variant(alias).name}", f"{f[alias + '_post_epoch_s']:.2f}",
                   f"{f[alias + '_ours_epoch_s']:.2f}", f"{f[alias + '_epoch_ratio']:.3f}",
                   f"{f[alias + '_epoch_noise_pct']:.1f}%")
              for alias in aliases]
    lines += ["", _row("model1 on our pipeline, epoch time (s)", "no XLA", "XLA", "XLA/no")]
    lines.append(f"  {f['xla_not_measured']}" if "xla_not_measured" in f else
                 f"  XLA failed: {f['xla_error']}" if "xla_error" in f else
                 _row("  jit_compile", f"{f['model1_noxla_epoch_s']:.2f}",
                      f"{f['model1_xla_epoch_s']:.2f}", f"{f['xla_ratio']:.3f}"))
    lines += ["", _row(f"timing callback, model1 ({f['timing_steps_per_epoch']} steps x "
                       f"{f['timing_epochs_each']} epochs)", "off", "on", "on/off", "noise"),
              _row("  wall time per epoch (s)",
                   f"{f['timing_off_epoch_s']:.3f}", f"{f['timing_on_epoch_s']:.3f}",
                   f"{f['timing_on_epoch_s'] / f['timing_off_epoch_s']:.4f}",
                   f"{f['timing_wall_noise_pct']:.1f}%"),
              _row("  CPU time per epoch, this process (s)",
                   f"{f['timing_off_cpu_s']:.3f}", f"{f['timing_on_cpu_s']:.3f}",
                   f"{f['timing_on_cpu_s'] / f['timing_off_cpu_s']:.4f}",
                   f"{f['timing_noise_pct']:.1f}%"),
              f"  CPU time on/off, pairs of neighbouring runs (%): {f['timing_pairs_pct']}",
              (f"  direct cost: {f['timing_callback_us_per_step']:.1f} us per step = "
               f"{f['timing_direct_pct']:.4f}% of the {f['timing_step_ms']:.1f} ms median step")]
    return lines


def _summary(f: dict[str, Any], aliases: list[str]) -> list[str]:
    lines = ["", (f"input throughput: ours/post = {f['input_ratio']:.1f}x (target >= "
                  f"{INPUT_TARGET:g}x) {_verdict(f['input_ratio'] >= INPUT_TARGET)}"),
             (f"first pass (the one-time decode): ours/post = {f['first_pass_ratio']:.2f}x "
              f"(target >= {FIRST_PASS_TARGET:g}x) "
              f"{_verdict(f['first_pass_ratio'] >= FIRST_PASS_TARGET)}")]
    for alias in aliases:
        ratio = f[alias + "_epoch_ratio"]
        lines.append(f"{alias} epoch time: ours/post = {ratio:.2f} (target <= {EPOCH_TARGET:g}; "
                     f"noise {f[alias + '_epoch_noise_pct']:.1f}%) "
                     f"{_verdict(ratio <= EPOCH_TARGET)}")
    lines.append(f"model1 XLA: epoch time XLA/no XLA = {f['xla_ratio']:.2f}"
                 if "xla_ratio" in f else f"model1 XLA: {f['xla_not_measured']}"
                 if "xla_not_measured" in f else f"model1 XLA: failed ({f['xla_error']})")
    overhead = f["timing_overhead_pct"]
    lines.append(f"timing callback overhead: {overhead:+.2f}% of epoch CPU time (median of "
                 f"pairs {f['timing_pairs_pct']}; wall {f['timing_wall_pct']:+.2f}%, noise "
                 f"{f['timing_wall_noise_pct']:.1f}%), {f['timing_direct_pct']:.3f}% timed "
                 f"directly (target < {TIMING_TARGET_PCT:g}%) "
                 f"{_verdict(overhead < TIMING_TARGET_PCT)}")
    return lines


def render_speed(f: dict[str, Any]) -> str:
    """The fixed-width table and the summary lines of `measure_speed`'s figures."""
    from catsdogs.models import get_variant

    aliases = [get_variant(variant).alias for variant in f["variants"].split(",")]
    return "\n".join(_header(f) + _table(f, aliases) + _summary(f, aliases))


def run_speed_benchmark(options: BenchOptions, progress: Progress = None,
                        epochs: int = DEFAULT_SPEED_EPOCHS) -> str:
    """`catsdogs speed`: measure, then the table."""
    return render_speed(measure_speed(options, progress, epochs))

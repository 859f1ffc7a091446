"""`catsdogs ab`: one model's step time under two environments, in alternating bursts.

Why interleave: step times recorded at different times on a shared machine differ by
whatever else the machine did meanwhile, and no statistics can undo that. Here each side
is a long-lived worker (catsdogs.training.ab_worker) holding the decoded data and the
compiled model, and the coordinator lets one side at a time train a short burst of
steps, never both at once, in blocks A B B A. Two neighbouring bursts share the
machine's load, so their ratio is free of slow drift; A B B A puts the base first in one
pair of a block and second in the other, so a drift within a block, or a cost of
switching sides, cancels in the mean instead of favouring a side.

Per variant: both sides build it (the same parameter counts, or refused); WARMUP_BURSTS
bursts per side are run and discarded (the first holds tracing); then blocks until the
verdict is decided at a look (`looks`: the interval at EARLY_LEVEL is decisive), until
the next block would overrun --budget (minutes, per variant, warm-up included), or at
MAX_PAIRS. Each burst's value is the median of its step times (train.py's step_time_ms
is a median too); the statistics are catsdogs.stats.burst_ratio's.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Protocol

from catsdogs import stats
from catsdogs.envs import Environment
from catsdogs.errors import UsageError

WARMUP_BURSTS = 2  # per side, discarded
WARMUP_STEPS = 3  # steps per warm-up burst
BURST_TARGET_S = 2.0  # the length the automatic burst aims at
MIN_BURST_STEPS, MAX_BURST_STEPS = 3, 200
ORDER = (0, 1, 1, 0)  # one block: base, candidate, candidate, base
MIN_PAIRS = 8  # the first look
LOOK_GROWTH = 1.5  # each look at about 1.5 times the pairs of the one before
MAX_PAIRS = 400
EARLY_LEVEL = 0.99  # a look stops the variant only when this interval is decisive
LEVEL = 0.95  # the interval reported, and the verdict at the end
FIRST_BURST_TIMEOUT_S = 1800.0  # tracing (and XLA/oneDNN autotuning) on a slow machine
SIDES = ("base", "candidate")
ROLES = ("BASE", "CANDIDATE")


class Side(Protocol):
    """What the coordinator asks of a side (ab_worker.WorkerProcess, or a test's fake)."""

    def start(self, options: dict[str, Any], seed: int) -> dict[str, Any]: ...
    def build(self, variant: str) -> dict[str, Any]: ...
    def train(self, steps: int, timeout: float) -> list[float]: ...
    def log_tail(self) -> list[str]: ...
    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    """How long and against what: --budget (seconds here), --max-slowdown, --burst-steps."""

    budget_s: float = 300.0
    max_slowdown: float = 5.0
    burst_steps: int | None = None  # None: chosen from the warm-up (BURST_TARGET_S)
    max_pairs: int = MAX_PAIRS


@dataclasses.dataclass
class Burst:
    """One side's burst: its step times and when it ran (seconds from the variant's start)."""

    side: int  # 0 base, 1 candidate
    step_ms: list[float]
    started_s: float
    seconds: float
    warmup: bool = False

    @property
    def value(self) -> float:
        return float(statistics.median(self.step_ms))


@dataclasses.dataclass
class VariantResult:
    variant: str
    params: dict[str, int]
    burst_steps: int
    bursts: list[Burst]
    estimate: stats.BurstRatio
    stopped: str  # why measuring ended
    elapsed_s: float

    def measured(self, side: int | None = None) -> list[Burst]:
        return [b for b in self.bursts if not b.warmup and (side is None or b.side == side)]

    def step_ms(self, side: int) -> float:
        """Geometric mean over the side's measured bursts of their median step (ms)."""
        values = [b.value for b in self.measured(side)]
        return math.exp(statistics.fmean(map(math.log, values))) if values else math.nan


@dataclasses.dataclass
class ABResult:
    environments: tuple[Environment, Environment]
    starts: tuple[dict[str, Any], dict[str, Any]]  # each side's start answer
    settings: Settings
    variants: list[VariantResult]
    started_utc: str
    machine: dict[str, Any]
    log_tails: tuple[list[str], list[str]] = ([], [])

    def exit_code(self, strict: bool = False) -> int:
        verdicts = [v.estimate.verdict for v in self.variants]
        if "regression" in verdicts:
            return 1
        return 3 if strict and "inconclusive" in verdicts else 0


# ---------------------------------------------------------------- the schedule


def looks(max_pairs: int = MAX_PAIRS) -> list[int]:
    """The pair counts at which a variant may stop early: MIN_PAIRS, then each about
    LOOK_GROWTH times the last (even: a block adds two pairs). Few, spread looks keep
    the chance that one of them is wrong by luck near the single look's
    (docs/verdicts.md has the simulated rates)."""
    found, n = [], MIN_PAIRS
    while n < max_pairs:
        found.append(n)
        n = 2 * math.ceil(n * LOOK_GROWTH / 2)
    return found


def pair_log_ratios(bursts: list[Burst]) -> list[float]:
    """log(candidate / base) of each pair of neighbouring measured bursts (1-2, 3-4, ...)."""
    measured = [b for b in bursts if not b.warmup]
    ratios = []
    for first, second in zip(measured[0::2], measured[1::2]):
        base, candidate = (first, second) if first.side == 0 else (second, first)
        ratios.append(math.log(candidate.value / base.value))
    return ratios


def decide(log_ratios: list[float], *, max_slowdown: float, final: bool) -> stats.BurstRatio:
    """The judgement at a look (`final` False: at EARLY_LEVEL, decisive or not) or at the
    end (at LEVEL). What is reported is always the LEVEL interval; an early stop is
    consistent with it, since the wider EARLY_LEVEL interval was decisive first."""
    reported = stats.burst_ratio(log_ratios, max_slowdown=max_slowdown, level=LEVEL)
    if final:
        return reported
    early = stats.burst_ratio(log_ratios, max_slowdown=max_slowdown, level=EARLY_LEVEL)
    return reported if early.verdict != "inconclusive" else early


def burst_length(warmup: list[Burst], given: int | None) -> int:
    """--burst-steps, or as many steps as BURST_TARGET_S takes at the slower side's
    median step in its last warm-up burst."""
    if given:
        return given
    last = {b.side: b.value for b in warmup}
    step_s = max(last.values()) / 1000.0
    return int(min(MAX_BURST_STEPS, max(MIN_BURST_STEPS, math.ceil(BURST_TARGET_S / step_s))))


# ---------------------------------------------------------------- the sides


def _both(function: Callable[[int], Any]) -> list[Any]:
    """function(0) and function(1) at once (the sides' start-up, which is not timed).
    The pool is not joined on the way out: after a refusal or Ctrl-C the caller stops
    the workers, which ends the other thread's wait."""
    pool = concurrent.futures.ThreadPoolExecutor(2)
    try:
        futures = [pool.submit(function, index) for index in (0, 1)]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False)


DATA_KEYS = ("dataset", "fingerprint", "n_train", "n_validation", "n_test", "limit",
             "batch_size", "seed", "skipped_images", "weights")
PARAM_KEYS = ("params_total", "params_trainable", "params_non_trainable")


def _same(what: str, key: str, values: list[Any], envs: tuple[Environment, Environment],
          expected: str) -> None:
    if values[0] != values[1]:
        raise UsageError(f"{what}: {key} is {values[0]!r} on BASE {envs[0].spec} and "
                         f"{values[1]!r} on CANDIDATE {envs[1].spec}; expected {expected}")


def check_same_data(starts: list[dict[str, Any]], envs: tuple[Environment, Environment]
                    ) -> None:
    """Both sides train on the same images: same fingerprint, counts, limit, batch, seed."""
    for key in DATA_KEYS:
        _same("the sides do not use the same data", key,
              [start["data"].get(key) for start in starts], envs,
              "the same images on both sides (same data folder, --limit, --batch-size)")


def check_same_models(sides: list[Side], variants: tuple[str, ...],
                      envs: tuple[Environment, Environment]) -> dict[str, dict[str, int]]:
    """Every variant builds with the same parameter counts on both sides, checked before
    any variant is measured; a side's Keras that builds another model is refused."""
    counts = {}
    for variant in variants:
        built = [side.build(variant) for side in sides]
        for key in PARAM_KEYS:
            _same(f"{variant}: the sides do not build the same model", key,
                  [answer["params"].get(key) for answer in built], envs,
                  "the same parameter counts")
        counts[variant] = built[0]["params"]
    return counts


# ---------------------------------------------------------------- one variant


class _Bursts:
    """The bursts of one variant, run one at a time and timed by the coordinator's clock."""

    def __init__(self, sides: list[Side], clock: Callable[[], float]) -> None:
        self.sides, self.clock = sides, clock
        self.start = clock()
        self.bursts: list[Burst] = []

    def elapsed(self) -> float:
        return self.clock() - self.start

    def run(self, side: int, steps: int, warmup: bool = False) -> Burst:
        known = [b.seconds for b in self.bursts if not b.warmup]
        timeout = FIRST_BURST_TIMEOUT_S if not known else 60.0 + 20 * max(known)
        began = self.elapsed()
        step_ms = self.sides[side].train(steps, timeout)
        if not step_ms:
            raise UsageError(f"{ROLES[side]}: a burst of {steps} steps timed no step; "
                             "expected one time per step")
        burst = Burst(side, step_ms, began, self.elapsed() - began, warmup)
        self.bursts.append(burst)
        return burst

    def block_seconds(self, steps: int) -> float:
        """What the next block A B B A will take: four of the recent bursts, or before
        the first block, `steps` at the slower side's pace in its last warm-up burst."""
        measured = [b.seconds for b in self.bursts if not b.warmup][-8:]
        if measured:
            return 4 * statistics.fmean(measured)
        return 4 * steps * max(b.seconds / len(b.step_ms) for b in self.bursts[-2:])


def measure_variant(sides: list[Side], variant: str, params: dict[str, int],
                    settings: Settings, reporter, clock: Callable[[], float]) -> VariantResult:
    """Build, warm up, then blocks A B B A until decided, out of budget or at max_pairs."""
    from catsdogs.progress import format_duration

    run = _Bursts(sides, clock)
    for side in sides:
        side.build(variant)  # a fresh model, seeded as every run is
    for _ in range(WARMUP_BURSTS):
        for side in (0, 1):
            run.run(side, settings.burst_steps or WARMUP_STEPS, warmup=True)
    steps = burst_length(run.bursts[-2:], settings.burst_steps)
    schedule, pairs = set(looks(settings.max_pairs)), 0
    count = reporter.counter(f"{variant} bursts", "bursts")
    stopped = "budget"
    while pairs < settings.max_pairs:
        block_s, left = run.block_seconds(steps), settings.budget_s - run.elapsed()
        if block_s > left:
            break
        for side in ORDER:
            run.run(side, steps)
        pairs += 2
        blocks_left = int((left - block_s) // max(run.block_seconds(steps), 1e-9))
        count(2 * pairs, 2 * pairs + 4 * max(1, blocks_left))  # complete only at the end
        if pairs in schedule:
            estimate = decide(pair_log_ratios(run.bursts), max_slowdown=settings.max_slowdown,
                              final=False)
            reporter.line(f"  {variant}: {pairs} pairs, x{estimate.ratio:.4f} "
                          f"({estimate.level:.0%}: x{estimate.low:.4f} to x{estimate.high:.4f})"
                          f" {estimate.verdict}, {format_duration(run.elapsed())} in")
            if estimate.verdict != "inconclusive":
                stopped = f"decided early: the {EARLY_LEVEL:.0%} interval was decisive"
                break
    else:
        stopped = f"{settings.max_pairs} pairs, the most a variant runs"
    if pairs:
        count(2 * pairs, 2 * pairs)
    if stopped == "budget":
        stopped = f"budget of {format_duration(settings.budget_s)} reached"
    estimate = decide(pair_log_ratios(run.bursts), max_slowdown=settings.max_slowdown,
                      final=True)
    return VariantResult(variant, params, steps, run.bursts, estimate, stopped, run.elapsed())


# ---------------------------------------------------------------- the session


def machine_facts() -> dict[str, Any]:
    """The coordinator's machine and how busy it is (load averages), for the record."""
    import os
    import platform
    import socket

    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"host": socket.gethostname(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "load_average_1_5_15": load}


def _launch(sides: list[Any], index: int, make_side: Callable[[Environment, str], Side],
            envs: tuple[Environment, Environment], payload: dict[str, Any], seed: int
            ) -> dict[str, Any]:
    """Start side `index` (kept in `sides` at once, so it is closed whatever happens)."""
    sides[index] = make_side(envs[index], ROLES[index])
    return sides[index].start(payload, seed)


def compare_environments(envs: tuple[Environment, Environment], options, settings: Settings,
                         reporter, *, make_side: Callable[[Environment, str], Side],
                         seed: int = 0, clock: Callable[[], float] = time.monotonic
                         ) -> ABResult:
    """Start both sides (`make_side(env, role)`: ab_worker.WorkerProcess, or a test's
    fake), check they run the same models on the same data, measure every variant, and
    stop the sides (also on an error or Ctrl-C)."""
    import datetime as dt

    from catsdogs.progress import format_duration

    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    payload = {key: list(value) if isinstance(value, tuple) else value
               for key, value in dataclasses.asdict(options).items()}
    sides: list[Any] = [None, None]
    machine = machine_facts()
    try:
        begun = clock()
        starts = _both(lambda index: _launch(sides, index, make_side, envs, payload, seed))
        check_same_data(starts, envs)
        params = check_same_models(sides, tuple(options.variants), envs)
        reporter.line(f"both sides started in {format_duration(clock() - begun)} (TensorFlow "
                      f"{starts[0]['environment'].get('tf_version', '?')} and "
                      f"{starts[1]['environment'].get('tf_version', '?')}), same data, same "
                      f"models")
        results = []
        for index, variant in enumerate(options.variants, 1):
            rest = len(options.variants) - index
            reporter.line(f"[{index}/{len(options.variants)}] {variant}: at most "
                          f"{format_duration(settings.budget_s)}"
                          + (f", then {rest} more at most as long" if rest else ""))
            result = measure_variant(sides, variant, params[variant], settings, reporter, clock)
            reporter.line(f"{variant}: {result.estimate.verdict}, x{result.estimate.ratio:.4f}"
                          f" ({result.stopped})")
            results.append(result)
        tails = tuple(side.log_tail() for side in sides)
        machine["load_average_at_end"] = machine_facts()["load_average_1_5_15"]
        return ABResult(envs, tuple(starts), settings, results, started, machine, tails)
    finally:
        for side in sides:
            if side is not None:
                side.close()


def prepare_options(options, seed: int, progress=None):
    """The options both workers get, after every check that needs no TensorFlow: the
    data found (downloaded, or generated when --synthetic, once, before two workers
    could race for it), --limit against its folders, model4's weights present; paths
    made absolute, since the workers run in the checkout's folder."""
    from pathlib import Path

    from catsdogs.dataset import scan
    from catsdogs.dataset.pipeline import check_limit
    from catsdogs.models import get_variant, resolve_weights
    from catsdogs.training.runner import resolve_data_dir

    data_dir = resolve_data_dir(options, progress)
    check_limit(options.limit, scan.scan_dataset(data_dir,
                                                 skip_bad=options.skip_bad_images).counts())
    weights = options.weights
    if any(get_variant(v).uses_weights for v in options.variants):
        resolve_weights(weights)  # missing: one line now, not two workers failing later
        if weights not in ("imagenet", "none"):
            weights = str(Path(weights).absolute())
    return dataclasses.replace(
        options, data_dir=None if options.synthetic else str(Path(data_dir).absolute()),
        results_dir=str(Path(options.results_dir).absolute()), weights=weights,
        seeds=(seed,))

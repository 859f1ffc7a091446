"""Every benchmark option, defined once.

`catsdogs run` (argparse) and `pytest bench` (pytest's parser) are both generated from
`OPTIONS`, and each option can also come from an environment variable `CATSDOGS_<NAME>`
(for CI runners). The parsers here turn a raw string into a checked value and raise
`UsageError` quoting the bad value, so both front ends fail the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import Any, Callable

from catsdogs.backend import BACKENDS, DEFAULT_BACKEND, TENSORFLOW, parse_backend
from catsdogs.constants import BATCH_SIZE, SMOKE_EPOCHS
from catsdogs.errors import UsageError
from catsdogs.fsutil import check_path_length

ENV_PREFIX = "CATSDOGS_"


# ---------------------------------------------------------------- value parsers


#: Largest seed: NumPy, TensorFlow and Keras all take seeds below 2**32.
MAX_SEED = 2**32 - 1
#: Upper bounds checked where the value is parsed, before TensorFlow loads: far above any
#: sensible value, low enough that nothing downstream overflows (a huge batch size once
#: wrote a row that made `report` crash).
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 8_192
MAX_LIMIT = 10_000_000


def parse_positive_int(text: str | int, *, option: str, high: int | None = None) -> int:
    """An integer >= 1 (epochs, batch size, limit), at most `high`."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{option}: expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise UsageError(f"{option}: expected a positive integer, got {text!r}")
    if high is not None and value > high:
        raise UsageError(f"{option}: expected a positive integer of at most {high:,}, "
                         f"got {text!r}")
    return value


def parse_path(text: str, *, option: str) -> str:
    """A path, with `~` expanded the way a shell would (`--results-dir=~/x` and
    `CATSDOGS_RESULTS_DIR=~/x` reach us unexpanded); an empty path is refused."""
    value = str(text).strip()
    if not value:
        raise UsageError(f"{option}: expected a path, got {text!r}")
    value = os.path.expanduser(value)
    check_path_length(option, value)  # ENAMETOOLONG as one line, before anything runs
    return value


def parse_seeds(text: str) -> list[int]:
    """A comma list of non-negative integer seeds, e.g. '0,1,2'; duplicates are refused
    because two rows with the same seed would count one run twice in the statistics."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not re.fullmatch(r"[0-9]+", part):
            raise UsageError(f"--seeds: expected non-negative integers like '0,1,2', got {text!r}")
        if int(part) > MAX_SEED:
            raise UsageError(f"--seeds: expected seeds from 0 to {MAX_SEED} (2**32 - 1), "
                             f"got {text!r}")
        seeds.append(int(part))
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: {text!r} names a seed twice; expected each seed once")
    return seeds


def parse_variants(text: str) -> list[str]:
    """'all' or a comma list of variant names or aliases (model1..model4); returns
    canonical names in registry order. A variant named twice is refused, as a seed
    given twice is: the user meant something else, and silently running it once hides
    the mistake."""
    from catsdogs.models import VARIANTS, canonical_name

    if str(text).strip().lower() == "all":
        return list(VARIANTS)
    named = [canonical_name(part.strip()) for part in str(text).split(",") if part.strip()]
    if not named:
        raise UsageError(f"--variants: expected 'all' or a comma list, got {text!r}")
    if len(set(named)) != len(named):  # the rule --seeds follows: a repeat is a mistake
        raise UsageError(f"--variants: {text!r} names a variant twice (a name and its alias "
                         "are one variant); expected each variant once")
    return [name for name in VARIANTS if name in named]


def parse_weights(text: str) -> str:
    """'imagenet', 'none', or a path to a weights file for the MobileNetV2 base (model4).
    A path is checked later, when model4 is built, so runs without model4 never care."""
    value = str(text).strip()
    if value.lower() in ("imagenet", "none"):
        return value.lower()
    if not value:
        raise UsageError("--weights: expected imagenet, none or a path, got ''")
    value = os.path.expanduser(value)
    check_path_length("--weights", value)
    return value


MAX_SHARDS = 10_000


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N: run only the K-th of N slices of the (variant, seed) matrix."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise UsageError(f"--shard: expected K/N like 1/2, got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard: expected 1 <= K <= N, got {text!r}")
    if n > MAX_SHARDS:
        raise UsageError(f"--shard: expected N of at most {MAX_SHARDS:,}, got {text!r}")
    return k, n


def parse_strategy(text: str) -> str:
    """'default' (one device) or 'mirrored' (tf.distribute.MirroredStrategy)."""
    value = str(text).strip().lower()
    if value not in ("default", "mirrored"):
        raise UsageError(f"--strategy: expected default or mirrored, got {text!r}")
    return value


def parse_bool(text: str | bool, *, option: str) -> bool:
    """Environment-variable booleans: 1/0, true/false, yes/no, on/off."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{option}: expected true or false, got {text!r}")


# ---------------------------------------------------------------- the registry


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: `--name` on both command lines, `CATSDOGS_NAME` in the environment."""

    name: str  # attribute name, e.g. "batch_size"
    help: str
    default: Any = None
    parse: Callable[[str], Any] | None = None  # None for flags
    metavar: str | None = None
    #: Older or shorter environment names also read, after `env` (e.g. CATSDOGS_DATA).
    env_aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment variable that sets this option, in the order they are read."""
        return (self.env, *self.env_aliases)

    @property
    def is_flag(self) -> bool:
        return self.parse is None

    def help_text(self) -> str:
        """Help that states the default and the environment variable, as users expect."""
        default = "off" if self.is_flag else self.default
        return f"{self.help} (default: {default}; env {' or '.join(self.env_names)})"


def _int(option: str, high: int) -> Callable[[str], int]:
    return lambda text: parse_positive_int(text, option=option, high=high)


def _path(option: str) -> Callable[[str], str]:
    return lambda text: parse_path(text, option=option)


OPTIONS: tuple[Option, ...] = (
    Option("variants", "variants to run: 'all' or a comma list (model1..model4 or names)",
           "all", parse_variants, "LIST"),
    Option("seeds", "comma list of seeds; one run per variant and seed", "0,1,2", parse_seeds,
           "LIST"),
    Option("epochs", "training epochs per run (the post trains 20)", 20,
           _int("--epochs", MAX_EPOCHS), "N"),
    Option("batch_size", f"global batch size (the post uses {BATCH_SIZE})", BATCH_SIZE,
           _int("--batch-size", MAX_BATCH_SIZE), "N"),
    Option("data_dir", "dataset folder (cats_and_dogs_filtered layout); otherwise the Keras "
           "cache, then a download", None, _path("--data-dir"), "DIR",
           env_aliases=(ENV_PREFIX + "DATA",)),
    Option("synthetic", "train on a generated synthetic dataset (labelled synthetic everywhere)"),
    Option("limit", "use only N images per class per split, chosen deterministically", None,
           _int("--limit", MAX_LIMIT), "N"),
    Option("weights", "MobileNetV2 base weights for model4: imagenet, none or a file path",
           "imagenet", parse_weights, "W"),
    Option("results_dir", "where result sets are written (each session a new folder)",
           "results", _path("--results-dir"), "DIR"),
    Option("deterministic", "enable TensorFlow op determinism (identical reruns, slower)"),
    Option("mixed_precision", "train in mixed_float16 with float32 logits"),
    Option("xla", "compile the training step with XLA (jit_compile)"),
    Option("strategy", "distribution: default (one device) or mirrored (all visible GPUs)",
           "default", parse_strategy, "S"),
    Option("shard", "run only the K-th of N slices of the variant x seed matrix", None,
           parse_shard, "K/N"),
    Option("resume", "add only the missing (variant, seed) runs to this existing result set",
           None, _path("--resume"), "RESULT_SET"),
    Option("skip_bad_images", "skip unreadable images (recorded) instead of stopping"),
    Option("backend", f"Keras backend that trains the models: {', '.join(BACKENDS)} (set as "
           "KERAS_BACKEND before Keras loads)", DEFAULT_BACKEND, parse_backend, "B"),
)

#: Options of `catsdogs speed` only (bench/test_speed.py reads the same one).
SPEED_OPTIONS: tuple[Option, ...] = (
    Option("speed_epochs", "epochs timed per model and pipeline", 2,
           _int("--speed-epochs", MAX_EPOCHS), "N"),
)

#: Most training steps a probe takes: a probe is a fingerprint, not a training run.
MAX_PROBE_STEPS = 1_000

#: Options of `catsdogs probe` and `catsdogs bisect` only (each bisect step is a probe).
PROBE_OPTIONS: tuple[Option, ...] = (
    Option("steps", "training steps whose losses (and the weights after them) a probe "
           "records", 3, _int("--steps", MAX_PROBE_STEPS), "N"),
)

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS + SPEED_OPTIONS + PROBE_OPTIONS}

#: The defaults a probe changes: one seed, since a probe is a fingerprint, not a statistic.
PROBE_DEFAULTS: dict[str, Any] = {"seeds": "0"}
#: The run options a probe takes (the others do not change what a probe computes), with
#: PROBE_DEFAULTS in place so that --help states the probe's own defaults.
PROBE_RUN_OPTIONS: tuple[Option, ...] = tuple(
    dataclasses.replace(OPTIONS_BY_NAME[name],
                        default=PROBE_DEFAULTS.get(name, OPTIONS_BY_NAME[name].default))
    for name in ("variants", "seeds", "batch_size", "data_dir", "synthetic", "limit",
                 "weights", "deterministic"))


@dataclasses.dataclass(frozen=True)
class VerdictLimit:
    """One option of the verdict rule (compare, trend): its flag, default and closed
    bounds. The CLI's parser and the verdict modules' own checks both read VERDICT_LIMITS,
    so a value one accepts the other cannot refuse."""

    flag: str
    default: float
    low: float
    high: float
    meaning: str
    help: str

    def check(self, value: float) -> float:
        """The value, or UsageError quoting it (NaN and infinities are outside any bound)."""
        if not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            raise UsageError(f"{self.flag}: expected {self.meaning} from {self.low:g} to "
                             f"{self.high:g}, got {value!r}")
        return float(value)


VERDICT_LIMITS = {
    "alpha": VerdictLimit("--alpha", 0.05, 0.0001, 0.49, "a false-alarm rate",
                          "family-wise false-alarm rate, Holm-corrected (default: 0.05)"),
    "min_change": VerdictLimit("--min-change", 1.0, 0.0, 99.0, "accuracy points",
                               "test-accuracy change, in points, that counts (default: 1)"),
    "max_slowdown": VerdictLimit("--max-slowdown", 10.0, 0.0, 1000.0, "a percentage",
                                 "step-time growth, in percent, that counts as a regression "
                                 "(default: 10)"),
}


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """The checked values of every option; what the runner and the bench consume."""

    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    data_dir: str | None
    synthetic: bool
    limit: int | None
    weights: str
    results_dir: str
    deterministic: bool
    mixed_precision: bool
    xla: bool
    strategy: str
    shard: tuple[int, int] | None
    resume: str | None
    skip_bad_images: bool
    backend: str = DEFAULT_BACKEND

    @property
    def smoke(self) -> bool:
        """A declared smoke run: too little data or training to judge accuracy."""
        return bool(self.limit or self.synthetic or self.epochs < SMOKE_EPOCHS)


def _raw_value(option: Option, raw: dict[str, Any], environ: dict[str, str]
               ) -> tuple[Any, str | None]:
    """(value, where it came from): the command line first, then `CATSDOGS_<NAME>`
    (an empty variable counts as unset), else (default, None)."""
    given = raw.get(option.name)
    if option.is_flag:
        if given:
            return True, option.flag
        if option.env in environ:
            return environ[option.env], option.env
        return False, None
    if given is not None:
        return given, option.flag
    for name in option.env_names:
        if environ.get(name, "") != "":
            return environ[name], name
    return option.default, None


def _checked(option: Option, value: Any, source: str | None) -> Any:
    """The parsed value; a bad one's error names its source: the flag, or the variable."""
    try:
        if option.is_flag:
            return parse_bool(value, option=source or option.env)
        return option.parse(value) if isinstance(value, str) else value
    except UsageError as exc:
        text = str(exc)
        for prefix in {option.flag, source or option.flag}:  # the source is named once
            if text.startswith((prefix + ":", prefix + " ")):  # '--x: ...', "--x 'path': ..."
                raise UsageError(f"{source or option.flag}{text[len(prefix):]}") from None
        raise UsageError(f"{source or option.flag}: {text}") from None


def resolve(raw: dict[str, Any], environ: dict[str, str] | None = None,
            defaults: dict[str, Any] | None = None) -> BenchOptions:
    """Checked options from raw command-line values (None = not given), falling back to
    `CATSDOGS_<NAME>` and then to the default (`defaults` replaces some, as
    PROBE_DEFAULTS does for `catsdogs probe`). The command line wins over the
    environment, also between options that exclude each other (--synthetic from the
    command line beats CATSDOGS_DATA_DIR). Raises UsageError naming the source of a bad
    value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str | None] = {}
    for option in OPTIONS:
        if defaults and option.name in defaults:
            option = dataclasses.replace(option, default=defaults[option.name])
        value, sources[option.name] = _raw_value(option, raw, environ)
        values[option.name] = _checked(option, value, sources[option.name])
    if values["synthetic"] and values["data_dir"]:
        synthetic_src, data_src = sources["synthetic"], sources["data_dir"]
        if synthetic_src and synthetic_src.startswith("--") and data_src.startswith(ENV_PREFIX):
            values["data_dir"] = None
        elif data_src.startswith("--") and synthetic_src.startswith(ENV_PREFIX):
            values["synthetic"] = False
        else:
            raise UsageError(f"{synthetic_src} and {data_src}: give one or the other, not both")
    _check_backend_options(values, sources)
    values["variants"] = tuple(values["variants"])
    values["seeds"] = tuple(values["seeds"])
    return BenchOptions(**values)


#: Options that exist only on TensorFlow: (option, its value there, what it is, the way
#: other backends go instead).
TENSORFLOW_ONLY = (
    ("strategy", "mirrored", "tf.distribute's MirroredStrategy",
     "jax and torch runs train on one device; pytest -n gives each worker its own GPU"),
    ("xla", True, "jit_compile (XLA for TensorFlow)",
     "jax compiles every training step with XLA anyway"),
)


def _check_backend_options(values: dict[str, Any], sources: dict[str, str | None]) -> None:
    """Refuse, naming both sources, an option that only TensorFlow has on another
    backend, instead of recording a run as something it was not."""
    if values["backend"] == TENSORFLOW:
        return
    for name, value, what, instead in TENSORFLOW_ONLY:
        if values[name] == value:
            flag = sources[name] or OPTIONS_BY_NAME[name].flag
            shown = flag if value is True else f"{flag} {value}"
            raise UsageError(f"{shown} and {sources['backend']} {values['backend']}: {what} "
                             f"exists on TensorFlow only; expected --backend tensorflow or "
                             f"no {shown} ({instead})")


def resolve_one(name: str, given: Any = None, environ: dict[str, str] | None = None) -> Any:
    """One registered option's checked value (command line, then environment, then
    default), for commands that take a single option (`speed --speed-epochs`,
    `data --data-dir`) rather than the whole run set."""
    option = OPTIONS_BY_NAME[name]
    environ = os.environ if environ is None else environ
    value, source = _raw_value(option, {name: given}, environ)
    return _checked(option, value, source)


def add_to_argparse(parser: argparse.ArgumentParser,
                    options: tuple[Option, ...] = OPTIONS) -> None:
    """Add options (default: the run's) to an argparse parser; values stay raw strings so
    `resolve`/`resolve_one` check them (and the environment) in one place."""
    for option in options:
        if option.is_flag:
            parser.add_argument(option.flag, dest=option.name, action="store_true", default=None,
                                help=option.help_text())
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar,
                                default=None, help=option.help_text())


def add_to_pytest(parser: Any) -> None:
    """Add every option to pytest's parser (bench/conftest.py), under one group."""
    group = parser.getgroup("catsdogs", "catsdogs benchmark")
    for option in OPTIONS:
        if option.is_flag:
            group.addoption(option.flag, dest=f"catsdogs_{option.name}", action="store_true",
                            default=None, help=option.help_text())
        else:
            group.addoption(option.flag, dest=f"catsdogs_{option.name}", metavar=option.metavar,
                            default=None, help=option.help_text())


def from_pytest(config: Any) -> BenchOptions:
    """The checked options of a pytest session."""
    raw = {option.name: config.getoption(f"catsdogs_{option.name}") for option in OPTIONS}
    return resolve(raw)

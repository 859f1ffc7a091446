"""The command line's words: argument types that refuse a bad value in one line, and the
help texts and examples of every subcommand.

Apart from catsdogs.cli (which wires subcommands to what they do) so that the parser's
grammar can grow with new commands without the wiring passing 500 lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from catsdogs.constants import ALLOW_DIFFERENT_MACHINES
from catsdogs.errors import UsageError
from catsdogs.options import MAX_SEED, OPTIONS_BY_NAME, VERDICT_LIMITS, add_to_argparse


def float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number within [low, high], refused with the value quoted."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high}, got {text!r}")
        return value

    return parse


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number within [low, high], refused with the value quoted."""

    def parse(text: str) -> int:
        if not text.strip().isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, "
                                             f"got {text!r}")
        return int(text)

    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse, but bad usage is one line and exit 2 (argparse's own default is 2 too,
    with the whole usage block first; one line is easier to read in CI logs). The line
    names the subcommand (`catsdogs: error: compare: ...`); `catsdogs: error:` itself
    comes from `main`, once."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise UsageError(f"{command}: {message}" if command else message)


def allow_different_machines(parser: argparse.ArgumentParser) -> None:
    """--allow-different-machines, defined once for compare, trend and report --baseline."""
    parser.add_argument(ALLOW_DIFFERENT_MACHINES, dest="allow_different_machines",
                        action="store_true",
                        help="give step-time verdicts between runs of different or "
                        "unrecorded machines too, labelled as such (default: not comparable)")


def user_path(text: str) -> Path:
    """A path argument as the shell would have expanded it: `~` and `~user` work in every
    option (quoted, or after `=`, the shell leaves them to us)."""
    return Path(text).expanduser()


def subcommand(sub, name: str, summary: str, description: str, epilog: str | None = None):
    """A subcommand whose --help says what it does for the user, with examples."""
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def verdict_options(parser: argparse.ArgumentParser) -> None:
    """The options compare and trend share: one rule, defined once (docs/verdicts.md)."""
    for limit in VERDICT_LIMITS.values():
        parser.add_argument(limit.flag, type=float_in(limit.low, limit.high),
                            default=limit.default, help=limit.help)
    parser.add_argument("--format", choices=("github", "plain"), default="github",
                        help="table style (default: github)")
    parser.add_argument("--json", metavar="PATH", type=user_path,
                        help="also write the verdicts as JSON "
                        "(schema in docs/verdicts.md)")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="combine non-comparable rows, marked as such")
    parser.add_argument("--allow-duplicates", action="store_true",
                        help="accept a (variant, seed) twice on one side or release, flagged")
    allow_different_machines(parser)


def ab_parser(sub) -> argparse.ArgumentParser:
    """`catsdogs ab`: its own options, and the data options every run takes."""
    ab = subcommand(sub, "ab", "step time under two environments, in alternating bursts",
                     "Train the same model on the same data under two Python environments "
                     "(an interpreter's path, or tox:NAME), one long-lived worker each, in "
                     "short alternating bursts (A B B A ...), never both at once; then the "
                     "step-time ratio CANDIDATE/BASE per variant with a 95% interval and a "
                     "verdict. Exit 1 on a regression, 3 with --strict when inconclusive, "
                     "2 for unusable input.", AB_EPILOG)
    ab.add_argument("base", metavar="BASE", help="interpreter path or tox:NAME")
    ab.add_argument("candidate", metavar="CANDIDATE", help="interpreter path or tox:NAME")
    add_to_argparse(ab, tuple(OPTIONS_BY_NAME[name] for name in (
        "variants", "batch_size", "data_dir", "synthetic", "limit", "weights",
        "skip_bad_images", "results_dir")))
    ab.add_argument("--seed", type=int_in(0, MAX_SEED), default=0,
                    help="the seed of both sides' model and data order (default: 0)")
    ab.add_argument("--budget", type=float_in(0.01, 1440), default=5.0, metavar="MINUTES",
                    help="at most this long per variant, warm-up included (default: 5)")
    ab.add_argument("--max-slowdown", type=float_in(0.1, 1000), default=5.0, metavar="PCT",
                    help="the step-time growth that counts as a regression (default: 5)")
    ab.add_argument("--burst-steps", metavar="N", default=None, type=int_in(1, 10_000),
                    help="training steps per burst (default: about 2 s of steps)")
    for side in ("base", "candidate"):
        ab.add_argument(f"--{side}-env", action="append", metavar="K=V",
                        help=f"an environment variable for the {side} side only, set before "
                        "TensorFlow loads (repeatable)")
    ab.add_argument("--json", metavar="PATH", type=user_path,
                    help="also write the verdicts as JSON (schema catsdogs-ab/1, "
                    "docs/verdicts.md); the record then goes beside it")
    ab.add_argument("--strict", action="store_true",
                    help="exit 3 when a verdict is inconclusive or not comparable")
    return ab


DESCRIPTION = """\
Train four Keras CNNs on cats vs dogs with several seeds, record every number with the
TensorFlow, Keras, device and data it came from, and tell whether a new TensorFlow
release made them less accurate or slower. Each session writes a new result set under
results/runs/; nothing is overwritten."""

EPILOG = """\
first run (downloads the 68 MB dataset and model4's ImageNet weights if needed):
  catsdogs data                          where the data is, its counts and fingerprint
  catsdogs run --epochs 1 --seeds 0 --variants model1     a quick check that all works
  catsdogs run                           the full matrix: 4 variants x 3 seeds x 20 epochs
  catsdogs report results/runs/<set>     tables and plots of a result set

The pytest front end runs the same matrix: pytest bench --benchmark-only
Bad input is one line on stderr and exit status 2 (--debug shows the traceback)."""

RUN_EPILOG = """\
Every option can also come from CATSDOGS_<NAME> (e.g. CATSDOGS_EPOCHS=5).
On a terminal it shows the run (k of N), the epoch and ETAs for the run and the whole
matrix; in a log or with CI set, one line per epoch with the same ETAs.

examples:
  catsdogs run                                     4 variants x seeds 0,1,2 x 20 epochs
  catsdogs run --variants model1 --epochs 1 --seeds 0   a quick check that all works
  catsdogs run --synthetic --epochs 1              offline, on generated data (labelled)
  catsdogs run --resume results/runs/<set>         finish an interrupted session
  catsdogs run --shard 2/4                         the 2nd of 4 CI runners' share"""

DATA_EPILOG = """\
Looks in --data-dir, then CATSDOGS_DATA, then the Keras cache (~/.keras/datasets), then
downloads the official archive (68 MB, size checked) into the Keras cache.

examples:
  catsdogs data
  catsdogs data --data-dir ~/datasets/cats_and_dogs_filtered"""

SPEED_EPILOG = """\
examples:
  catsdogs speed --limit 100 --variants model1     a few minutes on a CPU
  catsdogs speed --speed-epochs 3                   the full data, more timed epochs"""


PROBE_EPILOG = """\
Cost: one batch and --steps training steps per variant and seed (meant to stay under a
minute each on 2 CPU cores), after the images are decoded once (--limit: quick). examples:
  catsdogs probe --variants model1,model3 --out tf221.npz
  catsdogs probe-diff tf218.npz tf221.npz"""

BISECT_EPILOG = """\
Each combination is a virtual environment (with TensorFlow ~2 GB; pip caches the
downloads); one that does not install or import is skipped with its reason. example:
  catsdogs bisect --good tensorflow==2.18.1,keras==3.7.0 \\
                  --bad tensorflow==2.21.0,keras==3.15.1 --variants model3"""
AB_EPILOG = """\
examples:
  catsdogs ab .venv/bin/python .venv/bin/python --variants model1      A/A: the noise floor
  catsdogs ab tox:tf218 tox:tf221 --variants model1,model3             two releases
  catsdogs ab .venv .venv --candidate-env TF_ENABLE_ONEDNN_OPTS=0      oneDNN off vs on
Both sides run this checkout's catsdogs; make a tox env first: tox -e NAME --notest"""

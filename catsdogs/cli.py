"""The `catsdogs` command: parse the command line, call the package, print the outcome.

    catsdogs data     where the data is, counts, fingerprint
    catsdogs run      train the variant x seed matrix into a new result set
    catsdogs report   tables and plots from result sets
    catsdogs compare  regression verdicts between two groups of result sets
    catsdogs trend    accuracy and step time across TensorFlow releases, and where they changed
    catsdogs speed    input-pipeline and epoch-time ratios against the post's pipeline

Bad input is one line on stderr and exit status 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from catsdogs import __version__, console
from catsdogs.constants import SMOKE_NOTE
from catsdogs.errors import UsageError
from catsdogs.options import (
    OPTIONS_BY_NAME,
    SPEED_OPTIONS,
    VERDICT_LIMITS,
    BenchOptions,
    add_to_argparse,
    resolve,
    resolve_one,
)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _resolve(args: argparse.Namespace) -> BenchOptions:
    """The checked options; a bad value's error names where it came from (the flag, or
    the CATSDOGS_<NAME> variable), and the command line wins over the environment."""
    return resolve(vars(args))


# ---------------------------------------------------------------- subcommands


def cmd_data(args: argparse.Namespace) -> int:
    from catsdogs.dataset import fetch, scan
    if resolve_one("synthetic", args.synthetic):
        from catsdogs.dataset.synthetic import ensure_synthetic

        root = ensure_synthetic()
    else:
        from catsdogs.progress import make_reporter

        root = fetch.locate_dataset(resolve_one("data_dir", args.data_dir),
                                    progress=make_reporter().counter("download", "bytes"))
    print(scan.describe(scan.scan_dataset(root)))
    return 0


def _describe_session(session, todo: list, options: BenchOptions,
                      say: Callable[[str], None]) -> None:
    """What the session is about to do, before the first run: where rows go, which data."""
    prepared = session.prepared
    say(f"result set: {session.result_set.path}" if session.started else
        f"result set: a new one in {options.results_dir}/runs/, made when the first run "
        "finishes")
    official = ("" if prepared.info.fingerprint_known
                else f" NOT the official set: {prepared.info.changes}")
    say(f"data: {prepared.data_dir} ({prepared.dataset}, fingerprint "
        f"{prepared.info.fingerprint[:12]}{official})")
    if prepared.info.non_image_files:
        say(f"  ignored {len(prepared.info.non_image_files)} non-image file(s), as Keras does: "
            + ", ".join(prepared.info.non_image_files[:5])
            + (", ..." if len(prepared.info.non_image_files) > 5 else ""))
    skipped = prepared.environment.get("skipped_images") or []
    if skipped:
        say(f"  skipping {len(skipped)} unreadable image(s) (--skip-bad-images; recorded): "
            + ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else ""))
    if options.smoke:
        say(SMOKE_NOTE)
    say(f"{len(todo)} run(s) of {options.epochs} epoch(s) to go")


def cmd_run(args: argparse.Namespace) -> int:
    from catsdogs.progress import make_reporter
    from catsdogs.training import runner

    options = _resolve(args)
    if options.shard and not runner.matrix(options.variants, options.seeds, options.shard):
        pairs = len(options.variants) * len(options.seeds)
        _say("shard {}/{}: no pairs to run ({} variant x seed pair(s) split {} ways leave this "
             "shard empty); nothing was created, the other shards cover every pair"
             .format(*options.shard, pairs, options.shard[1]))
        return 0
    runner.install_signal_handlers()
    reporter = make_reporter(sys.stderr)
    try:
        session = runner.start_session(options, reporter)
    except (KeyboardInterrupt, runner.Interrupted) as exc:
        reporter.close()
        _say(f"interrupted ({str(exc) or 'Ctrl-C'}) before any run started; nothing was recorded")
        return 130
    except UsageError:
        reporter.close()  # the one-line refusal goes below any half-drawn bar
        raise
    todo = session.todo()
    _describe_session(session, todo, options, reporter.line)
    reporter.start_session(todo, options.epochs)
    failed = 0
    try:
        for variant, seed in todo:
            reporter.start_run(variant, seed)
            row = runner.run_and_record(session.prepared, session, variant, seed,
                                        callbacks=(reporter.keras_callback(),))
            reporter.end_run(row)
            failed += row["status"] != "ok"
    except (KeyboardInterrupt, runner.Interrupted) as exc:
        reporter.close()
        if not session.started:
            _say(f"interrupted ({str(exc) or 'Ctrl-C'}) before the first run finished; "
                 "nothing was recorded")
            return 130
        result_set = session.result_set
        _say(f"interrupted ({str(exc) or 'Ctrl-C'}): {len(result_set.runs())} finished "
             f"run(s) are recorded in {result_set.path}; add the missing ones with "
             f"--resume {result_set.path}")
        return 130
    if not session.started or not session.result_set.runs():
        _say("nothing to run: every (variant, seed) pair is already recorded")
        return 0
    result_set = session.result_set
    from catsdogs.report.tables import render_table
    from catsdogs.resultset.store import load_result_sets

    runs, _, environments = load_result_sets([result_set.path])
    print(render_table(runs, environments, "plain"))
    print(f"\nresult set: {result_set.path}")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from catsdogs.report.build import check_report_outputs, render_report
    from catsdogs.report.tables import parse_columns

    result_sets = [Path(p) for p in args.result_sets]
    check_report_outputs(args.out, result_sets, args.readme)  # before --baseline compares
    verdicts_html = None
    if args.baseline:
        from catsdogs.verdicts import compare, output
        verdicts_html = output.compare_html(compare.compare(
            [Path(p) for p in args.baseline], result_sets, allow_mixed=args.allow_mixed))
    print(render_report(result_sets, fmt=args.format, verdicts_html=verdicts_html,
                        out=Path(args.out) if args.out else None, allow_mixed=args.allow_mixed,
                        data_dir=Path(args.data_dir) if args.data_dir else None,
                        columns=parse_columns(args.columns),
                        readme=Path(args.readme) if args.readme else None,
                        samples=not args.no_samples))
    return 0


def _compare_sides(sets: list[Path], candidate: list[Path] | None
                   ) -> tuple[list[Path], list[Path]]:
    """`compare BASE CANDIDATE`, or `compare BASE... --candidate CANDIDATE...`."""
    if candidate:
        return sets, candidate
    if len(sets) != 2:
        raise UsageError(f"compare: got {len(sets)} result set(s) and no --candidate; expected "
                         "BASE CANDIDATE, or BASE... --candidate CANDIDATE...")
    return sets[:1], sets[1:]


def cmd_compare(args: argparse.Namespace) -> int:
    from catsdogs.verdicts import compare, output

    json_path = Path(args.json) if args.json else None
    output.check_json_path(json_path)
    base, candidate = _compare_sides(args.sets, args.candidate)
    result = compare.compare(base, candidate,
                             alpha=args.alpha, min_change=args.min_change,
                             max_slowdown=args.max_slowdown, allow_mixed=args.allow_mixed,
                             allow_duplicates=args.allow_duplicates)
    if json_path:
        output.write_json(json_path, output.compare_json(result, strict=args.strict))
    print(output.compare_text(result, args.format))
    return result.exit_code(strict=args.strict)


def cmd_trend(args: argparse.Namespace) -> int:
    from catsdogs.markup import plain_text
    from catsdogs.report.build import check_out, made_dir, trend_dir
    from catsdogs.verdicts import output, trend

    json_path = Path(args.json) if args.json else None
    output.check_json_path(json_path)
    paths = [Path(p) for p in args.result_sets]
    folder = check_out(trend_dir(args.out, paths), args.out is not None)
    built = trend.build_trend(paths, alpha=args.alpha, min_change=args.min_change,
                              max_slowdown=args.max_slowdown, allow_mixed=args.allow_mixed,
                              allow_duplicates=args.allow_duplicates)
    if json_path:
        output.write_json(json_path, output.trend_json(built))
    written = output.trend_plot(built, made_dir(folder, args.out is not None))
    print(output.trend_text(built, args.format))
    print(f"wrote into {plain_text(folder)}: " + ", ".join(path.name for path in written))
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from catsdogs.training.speed import run_speed_benchmark

    options = _resolve(args)
    print(run_speed_benchmark(options, progress=_say,
                              epochs=resolve_one("speed_epochs", args.speed_epochs)))
    return 0


# ---------------------------------------------------------------- parser


def _float_in(low: float, high: float) -> Callable[[str], float]:
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


class _Parser(argparse.ArgumentParser):
    """argparse, but bad usage is one line and exit 2 (argparse's own default is 2 too,
    with the whole usage block first; one line is easier to read in CI logs). The line
    names the subcommand (`catsdogs: error: compare: ...`); `catsdogs: error:` itself
    comes from `main`, once."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise UsageError(f"{command}: {message}" if command else message)


def _user_path(text: str) -> Path:
    """A path argument as the shell would have expanded it: `~` and `~user` work in every
    option (quoted, or after `=`, the shell leaves them to us)."""
    return Path(text).expanduser()


def _verdict_options(parser: argparse.ArgumentParser) -> None:
    """The options compare and trend share: one rule, defined once (docs/verdicts.md)."""
    for limit in VERDICT_LIMITS.values():
        parser.add_argument(limit.flag, type=_float_in(limit.low, limit.high),
                            default=limit.default, help=limit.help)
    parser.add_argument("--format", choices=("github", "plain"), default="github",
                        help="table style (default: github)")
    parser.add_argument("--json", metavar="PATH", type=_user_path,
                        help="also write the verdicts as JSON "
                        "(schema in docs/verdicts.md)")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="combine non-comparable rows, marked as such")
    parser.add_argument("--allow-duplicates", action="store_true",
                        help="accept a (variant, seed) twice on one side or release, flagged")


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


def _subcommand(sub, name: str, summary: str, description: str, epilog: str | None = None):
    """A subcommand whose --help says what it does for the user, with examples."""
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="catsdogs", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"catsdogs {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = _subcommand(sub, "data", "find (or download) the dataset and check it",
                       "Find cats_and_dogs_filtered, download it if it is nowhere, check its "
                       "layout and print its counts and fingerprint (whether it is the "
                       "official set).", DATA_EPILOG)
    add_to_argparse(data, (OPTIONS_BY_NAME["data_dir"], OPTIONS_BY_NAME["synthetic"]))
    data.set_defaults(func=cmd_data)

    run = _subcommand(sub, "run", "train every variant x seed and record the results",
                      "Train the variant x seed matrix and record every run (accuracy, "
                      "step time, provenance) in a new result set, then print its table. "
                      "Everything that would stop the session (data, weights, results "
                      "folder) is checked before the first run.", RUN_EPILOG)
    add_to_argparse(run)
    run.set_defaults(func=cmd_run)

    speed = _subcommand(sub, "speed", "how much faster this pipeline is than the post's",
                        "Measure input-pipeline throughput and epoch time of this project's "
                        "decode-once pipeline against the post's decode-every-epoch one, "
                        "on the same images and model.", SPEED_EPILOG)
    add_to_argparse(speed)
    add_to_argparse(speed, SPEED_OPTIONS)
    speed.set_defaults(func=cmd_speed)

    report = sub.add_parser("report", help="comparison table and plots from result sets")
    report.add_argument("result_sets", nargs="+", metavar="RESULT_SET", type=_user_path)
    report.add_argument("--format", choices=("github", "latex", "plain", "csv"),
                        default="github", help="table printed (default: github)")
    report.add_argument("--out", metavar="DIR", type=_user_path,
                        help="where the tables, figures and "
                        "index.html go (default: report/<first set's name>/ beside runs/; "
                        "never a result set)")
    report.add_argument("--columns", metavar="LIST", help="table columns, comma-separated, "
                        "from: model, n, test, val, train, gap, above, step, images, params, "
                        "failed (default: all; LaTeX: model,n,test,val,train,gap, which "
                        "fits a default article's text width)")
    report.add_argument("--baseline", nargs="+", metavar="SET", type=_user_path,
                        help="also judge these "
                        "sets against the baseline SET(s) with compare's rule (default "
                        "thresholds) and put the verdicts into index.html")
    report.add_argument("--readme", metavar="FILE", type=_user_path,
                        help="also replace the block between "
                        "<!-- REPORT:START --> and <!-- REPORT:END --> in FILE with the "
                        "table and links to every figure (e.g. results/README.md)")
    report.add_argument("--allow-mixed", action="store_true",
                        help="combine non-comparable rows, marked as such")
    report.add_argument("--data-dir", metavar="DIR", type=_user_path,
                        help="dataset for the sample figures")
    report.add_argument("--no-samples", action="store_true", help="draw no pictures of the "
                        "dataset, even when its folder is at hand (e.g. for committed reports)")
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="regression verdicts: BASE vs CANDIDATE")
    compare.add_argument("sets", nargs="+", metavar="RESULT_SET", type=_user_path,
                         help="BASE CANDIDATE; or the base's sets, with --candidate")
    compare.add_argument("--candidate", nargs="+", metavar="RESULT_SET", type=_user_path,
                         help="the candidate's sets (shards, or one set per seed group)")
    _verdict_options(compare)
    compare.add_argument("--strict", action="store_true",
                         help="exit 3 when any verdict is inconclusive (default: exit 0)")
    compare.set_defaults(func=cmd_compare)
    parser.compare_parser = compare  # parse_args parses compare's words on their own

    trend = sub.add_parser("trend", help="accuracy and step time across TF versions")
    trend.add_argument("result_sets", nargs="+", metavar="RESULT_SET", type=_user_path)
    trend.add_argument("--out", metavar="DIR", type=_user_path,
                       help="where trend.png/.pdf go "
                       "(default: report/trend_<first set>/ beside runs/; never a result set)")
    _verdict_options(trend)
    trend.set_defaults(func=cmd_trend)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line, parsed. `compare`'s result sets may stand on either side of its
    options (`compare A --json j B`), so its own parser gathers positionals wherever they
    are (argparse's intermixed parsing, which a parser with subcommands cannot use)."""
    parser = build_parser()
    if argv[:1] == ["compare"]:
        return parser.compare_parser.parse_intermixed_args(argv[1:])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one command; whatever happens ends in the documented exit status and at most
    one line on stderr (catsdogs.console)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ chatter is not our output
    return console.outcome(lambda: _dispatch(argv), argv)


def _dispatch(argv: list[str]) -> int:
    args = parse_args(argv)
    return args.func(args)

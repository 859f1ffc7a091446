"""The `catsdogs` command: parse the command line, call the package, print the outcome.

    catsdogs data     where the data is, counts, fingerprint
    catsdogs run      train the variant x seed matrix into a new result set
    catsdogs report   tables and plots from result sets
    catsdogs compare  regression verdicts between two groups of result sets
    catsdogs trend    accuracy and step time across TensorFlow releases, and where they changed
    catsdogs speed    input-pipeline and epoch-time ratios against the post's pipeline
    catsdogs probe, probe-diff, bisect  where numerics changed: layer, step, package release
    catsdogs ab       step time under two environments, in alternating bursts

Bad input is one line on stderr and exit status 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from catsdogs import __version__, console
from catsdogs.arguments import (
    BISECT_EPILOG,
    DATA_EPILOG,
    DESCRIPTION,
    EPILOG,
    PROBE_EPILOG,
    RUN_EPILOG,
    SPEED_EPILOG,
    OneLineParser,
    ab_parser,
    allow_different_machines,
    subcommand,
    user_path,
    verdict_options,
)
from catsdogs.constants import SMOKE_NOTE
from catsdogs.errors import UsageError
from catsdogs.options import (
    OPTIONS_BY_NAME,
    PROBE_DEFAULTS,
    PROBE_OPTIONS,
    PROBE_RUN_OPTIONS,
    SPEED_OPTIONS,
    BenchOptions,
    add_to_argparse,
    resolve,
    resolve_one,
)
from catsdogs.training.machine import summary


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
    say(f"machine: {summary(prepared.environment.get('machine'))}")
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
    from catsdogs.resultset.load import load_result_sets

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
            [Path(p) for p in args.baseline], result_sets, allow_mixed=args.allow_mixed,
            allow_different_machines=args.allow_different_machines))
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
                             allow_duplicates=args.allow_duplicates,
                             allow_different_machines=args.allow_different_machines)
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
                              allow_duplicates=args.allow_duplicates,
                              allow_different_machines=args.allow_different_machines)
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


def cmd_probe(args: argparse.Namespace) -> int:
    from catsdogs.attribution.fileformat import check_new_file
    from catsdogs.attribution.probe import run_probe, summary_lines  # TensorFlow: later

    options = resolve(vars(args), defaults=PROBE_DEFAULTS)
    steps = resolve_one("steps", args.steps)
    out = check_new_file(args.out)  # before anything is computed
    meta = run_probe(options, steps, out, progress=_say)
    print("\n".join(summary_lines(meta)) + f"\nprobe file: {out}")
    return 0


def cmd_probe_diff(args: argparse.Namespace) -> int:
    from catsdogs.attribution.diff import diff_probes
    from catsdogs.attribution.fileformat import read_probe

    result = diff_probes(read_probe(args.a), read_probe(args.b))
    print(result.text())
    return result.exit_code


def cmd_bisect(args: argparse.Namespace) -> int:
    from catsdogs.attribution import venvs
    from catsdogs.attribution.bisect import bisect, changed_packages, parse_pins

    good, bad = parse_pins(args.good, "--good"), parse_pins(args.bad, "--bad")
    changed_packages(good, bad)  # refused here, before anything is built
    probe_args = venvs.probe_arguments(resolve(vars(args), defaults=PROBE_DEFAULTS),
                                       resolve_one("steps", args.steps))
    maker = venvs.VenvMaker(venvs.check_root(args.venvs or venvs.default_root()), args.python,
                            probe_args, say=_say)
    result = bisect(good, bad, maker, say=_say, pre=args.pre)
    print(result.line)
    return result.exit_code
def cmd_ab(args: argparse.Namespace) -> int:
    from catsdogs import envs
    from catsdogs.progress import make_reporter
    from catsdogs.training import ab, ab_report
    from catsdogs.training.ab_worker import WorkerProcess

    options = _resolve(args)
    sides = (envs.resolve(args.base, role="BASE", variables=envs.parse_assignments(
                 args.base_env, option="--base-env")),
             envs.resolve(args.candidate, role="CANDIDATE", variables=envs.parse_assignments(
                 args.candidate_env, option="--candidate-env")))
    outputs = ab_report.plan_outputs(args.json, options.results_dir,
                                     (sides[0].label, sides[1].label))
    reporter = make_reporter(sys.stderr)
    settings = ab.Settings(budget_s=60 * args.budget, max_slowdown=args.max_slowdown,
                           burst_steps=args.burst_steps)
    try:
        options = ab.prepare_options(options, args.seed, reporter)
        result = ab.compare_environments(sides, options, settings, reporter,
                                         make_side=WorkerProcess, seed=args.seed)
    except KeyboardInterrupt:
        reporter.close()
        _say("interrupted (Ctrl-C): both workers stopped; nothing was recorded")
        return 130
    finally:
        reporter.close()
    outputs = ab_report.write_outputs(result, outputs, ["catsdogs", *sys.argv[1:]],
                                      strict=args.strict)
    print(ab_report.render_text(result, outputs))
    return result.exit_code(strict=args.strict)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="catsdogs", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"catsdogs {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    data = subcommand(sub, "data", "find (or download) the dataset and check it",
                       "Find cats_and_dogs_filtered, download it if it is nowhere, check its "
                       "layout and print its counts and fingerprint (whether it is the "
                       "official set).", DATA_EPILOG)
    add_to_argparse(data, (OPTIONS_BY_NAME["data_dir"], OPTIONS_BY_NAME["synthetic"]))
    data.set_defaults(func=cmd_data)

    run = subcommand(sub, "run", "train every variant x seed and record the results",
                      "Train the variant x seed matrix and record every run (accuracy, "
                      "step time, provenance) in a new result set, then print its table. "
                      "Everything that would stop the session (data, weights, results "
                      "folder) is checked before the first run.", RUN_EPILOG)
    add_to_argparse(run)
    run.set_defaults(func=cmd_run)

    speed = subcommand(sub, "speed", "how much faster this pipeline is than the post's",
                        "Measure input-pipeline throughput and epoch time of this project's "
                        "decode-once pipeline against the post's decode-every-epoch one, "
                        "on the same images and model.", SPEED_EPILOG)
    add_to_argparse(speed)
    add_to_argparse(speed, SPEED_OPTIONS)
    speed.set_defaults(func=cmd_speed)
    ab_parser(sub).set_defaults(func=cmd_ab)

    probe = subcommand(sub, "probe", "a per-layer fingerprint of each variant's training",
                        "Record per variant and seed, on one fixed batch of training images, "
                        "every layer's initial weights, training-mode forward output (random "
                        "layers draw from their seeds) and gradient, the losses of the first "
                        "training steps and the weights after them.", PROBE_EPILOG)
    for options in (PROBE_RUN_OPTIONS, PROBE_OPTIONS):
        add_to_argparse(probe, options)
    probe.add_argument("--out", metavar="FILE", type=user_path, required=True,
                       help="the probe file to write (a new file; format in docs/verdicts.md)")
    probe.set_defaults(func=cmd_probe)

    probe_diff = subcommand(sub, "probe-diff", "are two probes identical, and where do they "
                             "part", "Per variant and seed: identical, or the first layer "
                             "whose output (then gradient) differs and by how much, and the "
                             "first differing training step. Exit 0 all identical, 1 any "
                             "differs, 2 the files cannot be compared.", PROBE_EPILOG)
    probe_diff.add_argument("a", metavar="A", type=user_path, help="the base probe file")
    probe_diff.add_argument("b", metavar="B", type=user_path, help="the candidate probe file")
    probe_diff.set_defaults(func=cmd_probe_diff)

    bisect = subcommand(sub, "bisect", "which package release first changed the probe",
                         "Between a good and a bad set of package pins, find which package "
                         "and release first changes the probe (one package at a time, binary "
                         "search over its releases, environments built as tox.ini builds "
                         "them). Exit 0 a release named, 1 none could be (the line says why), "
                         "2 bad input.", BISECT_EPILOG)
    for flag, what in (("--good", "e.g. tensorflow==2.18.1,keras==3.7.0"),
                       ("--bad", "the same packages at other versions")):
        bisect.add_argument(flag, metavar="PINS", required=True, help=f"{flag[2:]} pins, {what}")
    bisect.add_argument("--python", metavar="PY", default="python3.11", help="interpreter "
                        "of every environment (default: python3.11, as tox.ini's)")
    bisect.add_argument("--venvs", metavar="DIR", type=user_path, help="environment cache "
                        "(default: $CATSDOGS_VENVS, else ~/.cache/catsdogs/venvs)")
    bisect.add_argument("--pre", action="store_true", help="also search pre-releases")
    for options in (PROBE_RUN_OPTIONS, PROBE_OPTIONS):
        add_to_argparse(bisect, options)
    bisect.set_defaults(func=cmd_bisect)

    report = sub.add_parser("report", help="comparison table and plots from result sets")
    report.add_argument("result_sets", nargs="+", metavar="RESULT_SET", type=user_path)
    report.add_argument("--format", choices=("github", "latex", "plain", "csv"),
                        default="github", help="table printed (default: github)")
    report.add_argument("--out", metavar="DIR", type=user_path,
                        help="where the tables, figures and "
                        "index.html go (default: report/<first set's name>/ beside runs/; "
                        "never a result set)")
    report.add_argument("--columns", metavar="LIST", help="table columns, comma-separated, "
                        "from: model, n, test, val, train, gap, above, step, images, params, "
                        "failed (default: all; LaTeX: model,n,test,val,train,gap, which "
                        "fits a default article's text width)")
    report.add_argument("--baseline", nargs="+", metavar="SET", type=user_path,
                        help="also judge these "
                        "sets against the baseline SET(s) with compare's rule (default "
                        "thresholds) and put the verdicts into index.html")
    report.add_argument("--readme", metavar="FILE", type=user_path,
                        help="also replace the block between "
                        "<!-- REPORT:START --> and <!-- REPORT:END --> in FILE with the "
                        "table and links to every figure (e.g. results/README.md)")
    report.add_argument("--allow-mixed", action="store_true",
                        help="combine non-comparable rows, marked as such")
    allow_different_machines(report)
    report.add_argument("--data-dir", metavar="DIR", type=user_path,
                        help="dataset for the sample figures")
    report.add_argument("--no-samples", action="store_true", help="draw no pictures of the "
                        "dataset, even when its folder is at hand (e.g. for committed reports)")
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="regression verdicts: BASE vs CANDIDATE")
    compare.add_argument("sets", nargs="+", metavar="RESULT_SET", type=user_path,
                         help="BASE CANDIDATE; or the base's sets, with --candidate")
    compare.add_argument("--candidate", nargs="+", metavar="RESULT_SET", type=user_path,
                         help="the candidate's sets (shards, or one set per seed group)")
    verdict_options(compare)
    compare.add_argument("--strict", action="store_true",
                         help="exit 3 when a verdict is inconclusive or not comparable")
    compare.set_defaults(func=cmd_compare)
    parser.compare_parser = compare  # parse_args parses compare's words on their own

    trend = sub.add_parser("trend", help="accuracy and step time across TF versions")
    trend.add_argument("result_sets", nargs="+", metavar="RESULT_SET", type=user_path)
    trend.add_argument("--out", metavar="DIR", type=user_path,
                       help="where trend.png/.pdf go "
                       "(default: report/trend_<first set>/ beside runs/; never a result set)")
    verdict_options(trend)
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

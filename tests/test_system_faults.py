"""What the operating system refuses is one line with a documented exit status, never a
traceback; every path in an error is quoted, so an error stays one line; and the smaller
refusals of issue 24 (classes 4, 8 and 10).

Names too long for the file system in every path option (also through `pytest bench`,
which used to end in INTERNALERROR), KERAS_HOME that is a file, an environment.json
nested 100,000 deep, standard output closed early (`| head -1`) or on a full device,
Ctrl-C while `report` works, a newline in a path, argparse's own errors, a variant named
twice, --weights naming a FIFO or a folder, and a set compared with itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from resultsets import write_result_set
from test_bad_inputs import catsdogs, error_line, make_dataset, no_tensorflow  # noqa: F401

from catsdogs.cli import main

ROOT = Path(__file__).resolve().parents[1]
TOO_LONG_NAME = "n" * 300  # one component over NAME_MAX (255 bytes)
TOO_LONG_PATH = "/tmp/" + "d/" * 2600  # over PATH_MAX (4096 bytes)


@pytest.fixture
def no_tf(request) -> Path:
    return request.getfixturevalue("no_tensorflow")


@pytest.fixture
def result_set(tmp_path) -> Path:
    return write_result_set(tmp_path / "results", variants=["baseline_cnn"], seeds=[0, 1])


def in_process(capsys, *argv: str) -> tuple[int, str]:
    """Exit status and the one stderr line of an in-process `catsdogs ARGS`."""
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return code, lines[0]


# ---------------------------------------------------------------- names too long (ENAMETOOLONG)

#: case -> (argv with {long} (the too-long path), {set}, {data}, {tmp}; what the line names)
LONG_PATHS = {
    "--results-dir": (["run", "--data-dir", "{data}", "--results-dir", "{long}"],
                      "--results-dir '"),
    "--data-dir": (["run", "--data-dir", "{long}", "--results-dir", "{tmp}/r"], "--data-dir '"),
    "data --data-dir": (["data", "--data-dir", "{long}"], "--data-dir '"),
    "--resume": (["run", "--data-dir", "{data}", "--resume", "{long}"], "--resume '"),
    "--weights": (["run", "--data-dir", "{data}", "--results-dir", "{tmp}/r", "--variants",
                   "model4", "--weights", "{long}"], "--weights '"),
    "a result set (report)": (["report", "{long}"], "result set '"),
    "a result set (compare)": (["compare", "{set}", "{long}"], "result set '"),
    "report --out": (["report", "{set}", "--out", "{long}"], "--out '"),
    "report --data-dir": (["report", "{set}", "--out", "{tmp}/o", "--data-dir", "{long}"],
                          "--data-dir '"),
    "trend --out": (["trend", "{set}", "--out", "{long}"], "--out '"),
    "compare --json": (["compare", "{set}", "{set}", "--json", "{long}"], "--json '"),
}


@pytest.mark.parametrize("length", ["component", "whole path"])
@pytest.mark.parametrize("case", list(LONG_PATHS))
def test_a_name_too_long_for_the_file_system_is_one_line_exit_2(case, length, result_set,
                                                                tmp_path, capsys,
                                                                real_data_dir):
    data = make_dataset(real_data_dir, tmp_path / "data" / "cats_and_dogs_filtered", 3)
    long = str(tmp_path / TOO_LONG_NAME) if length == "component" else TOO_LONG_PATH
    argv, named = LONG_PATHS[case]
    code, line = in_process(capsys, *[arg.format(long=long, set=result_set, data=data,
                                                 tmp=tmp_path) for arg in argv])
    assert code == 2 and line.startswith(f"catsdogs: error: {named}"), line
    assert "bytes long" in line and "the file system's limit" in line, line
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()


def test_pytest_bench_with_a_name_too_long_is_a_usage_error_not_internalerror(tmp_path, no_tf):
    """`pytest bench` used to end in INTERNALERROR (exit 3) with a traceback."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(no_tf), str(ROOT)]))
    done = subprocess.run([sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider",
                           "--synthetic", "--results-dir", str(tmp_path / TOO_LONG_NAME)],
                          cwd=ROOT, capture_output=True, text=True, env=environ, timeout=120,
                          check=False)
    assert done.returncode == 4, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "INTERNALERROR" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "--results-dir" in errors[0] and "bytes long" in errors[0]


# ---------------------------------------------------------------- other refusals of the system


def test_keras_home_that_is_a_file_is_one_line_before_tensorflow(tmp_path, no_tf,
                                                                  real_data_dir):
    (tmp_path / "keras-home").write_text("a file, not a folder")
    data = make_dataset(real_data_dir, tmp_path / "data" / "cats_and_dogs_filtered", 3)
    env = {"KERAS_HOME": str(tmp_path / "keras-home")}
    for argv in (["data"], ["run", "--data-dir", str(data), "--results-dir",
                            str(tmp_path / "r"), "--variants", "model4"]):
        error_line(catsdogs(*argv, env=env, block_tf=no_tf), "KERAS_HOME",
                   "keras-home': is a file, not a folder", "expected a folder for Keras' cache")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["report", "compare", "trend"])
def test_an_environment_json_nested_100000_deep_is_one_line(command, result_set, capsys):
    """json.loads raised RecursionError, which no handler caught."""
    (result_set / "environment.json").write_text("[" * 100_000 + "]" * 100_000)
    argv = [command, str(result_set)] + ([str(result_set)] if command == "compare" else [])
    code, line = in_process(capsys, *argv)
    assert code == 2 and "environment.json': not readable JSON (nested too deep" in line


def _report_process(result_set: Path, out: Path, **kwargs) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-m", "catsdogs", "report", str(result_set),
                             "--out", str(out), "--no-samples"], env=environ,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_report_into_a_closed_pipe_exits_quietly(result_set, tmp_path):
    """`catsdogs report SET | head -1`: the reader left; no BrokenPipeError traceback and
    no error line, exit 141 as `cat` or `git` report it (128 + SIGPIPE)."""
    proc = _report_process(result_set, tmp_path / "out", stdout=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err.strip() == "", err


def test_report_to_a_full_device_is_one_line_exit_1(result_set, tmp_path):
    with open("/dev/full", "w") as full:
        proc = _report_process(result_set, tmp_path / "out", stdout=full)
        err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["catsdogs: error: could not write to standard output: No space left on "
                     "device (ENOSPC); expected a writable output (a full disk or device?)"]


def test_ctrl_c_during_report_is_one_line_exit_130_and_leaves_no_staging(result_set, tmp_path):
    """It used to print an 80-line traceback."""
    out = tmp_path / "out"
    proc = _report_process(result_set, out, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob(".report-*"))):  # it is drawing the figures
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    # 130, or ended by SIGINT itself after the one line: CPython did that once in CI (the
    # line printed, then the process killed by signal 2), and a shell reports both as 130.
    assert proc.wait(timeout=120) in (130, -signal.SIGINT), err
    assert [line for line in err.splitlines() if line.strip()] == [
        "interrupted (Ctrl-C): catsdogs report stopped before it finished; no result set "
        "was changed"]
    assert not list(out.glob(".report-*"))


# ---------------------------------------------------------------- every path quoted (class 8)

NEWLINE_PATHS = {
    "run --data-dir": ["run", "--data-dir", "{tmp}/a\nb", "--results-dir", "{tmp}/r"],
    "data --data-dir": ["data", "--data-dir", "{tmp}/a\nb"],
    "run --resume": ["run", "--synthetic", "--resume", "{tmp}/a\nb"],
    "report SET": ["report", "{tmp}/a\nb"],
    "compare SET": ["compare", "{set}", "{tmp}/a\nb"],
    "report --out under a file": ["report", "{set}", "--out", "{tmp}/file\nx/sub"],
    "compare --json": ["compare", "{set}", "{set}", "--json", "{tmp}/no\nfolder/v.json"],
    "report --readme": ["report", "{set}", "--out", "{tmp}/o", "--readme", "{tmp}/read\nme"],
    "probe --out": ["probe", "--synthetic", "--out", "{tmp}/no\nfolder/p.npz"],
    "probe-diff A B": ["probe-diff", "{tmp}/a\nb.npz", "{tmp}/c.npz"],
    "ab --json": ["ab", "{python}", "{python}", "--synthetic", "--json",
                  "{tmp}/no\nfolder/ab.json"],
    "ab BASE": ["ab", "{tmp}/no\npython", "{python}", "--synthetic"],
    "bisect --venvs": ["bisect", "--good", "keras==3.7.0", "--bad", "keras==3.8.0", "--venvs",
                       "{tmp}/file\nx/venvs"],
}


@pytest.mark.parametrize("case", list(NEWLINE_PATHS))
def test_a_newline_in_a_path_stays_on_the_error_line_quoted(case, result_set, tmp_path,
                                                             capsys):
    (tmp_path / "file\nx").write_text("a file where a folder is expected")
    argv = [arg.format(tmp=tmp_path, set=result_set, python=sys.executable)
            for arg in NEWLINE_PATHS[case]]
    before = sorted(tmp_path.rglob("*"))
    code, line = in_process(capsys, *argv)
    assert code == 2 and line.startswith("catsdogs: error: ") and "\\n" in line, line
    assert "'" in line  # the path is quoted, as repr quotes it
    assert sorted(tmp_path.rglob("*")) == before  # refused before anything was written


# ---------------------------------------------------------------- the smaller ones (class 10)


@pytest.mark.parametrize("argv,line", [
    (["bogus"], "catsdogs: error: argument command: invalid choice: 'bogus' (choose from"),
    ([], "catsdogs: error: the following arguments are required: command"),
    (["compare", "--alpha"], "catsdogs: error: compare: argument --alpha: expected one "),
    (["report", "--format", "pdf", "x"], "catsdogs: error: report: argument --format: "),
    (["ab", "x"], "catsdogs: error: ab: the following arguments are required: CANDIDATE"),
    (["ab", "x", "y", "--budget", "0"], "catsdogs: error: ab: argument --budget: expected "
                                        "0.01 to 1440, got '0'"),
    (["probe"], "catsdogs: error: probe: the following arguments are required: --out"),
    (["probe-diff", "a"], "catsdogs: error: probe-diff: the following arguments are "
                          "required: B"),
    (["bisect"], "catsdogs: error: bisect: the following arguments are required: --good, "
                 "--bad"),
])
def test_argparse_errors_say_catsdogs_error_once(argv, line, capsys):
    code, got = in_process(capsys, *argv)
    assert code == 2 and got.startswith(line) and "catsdogs: error: catsdogs" not in got, got


@pytest.mark.parametrize("variants", ["model1,model1", "model1,baseline_cnn"])
def test_a_variant_named_twice_is_refused_like_a_seed_named_twice(variants, tmp_path, no_tf):
    error_line(catsdogs("run", "--synthetic", "--results-dir", str(tmp_path / "r"),
                        "--variants", variants, block_tf=no_tf),
               f"--variants: '{variants}' names a variant twice (a name and its alias are "
               "one variant); expected each variant once")
    error_line(catsdogs("run", "--synthetic", "--results-dir", str(tmp_path / "r"),
                        "--seeds", "0,0", block_tf=no_tf), "--seeds: '0,0' names a seed twice")


@pytest.mark.parametrize("kind", ["a FIFO", "a folder"])
def test_weights_naming_a_fifo_or_a_folder_says_what_it_is(kind, tmp_path, no_tf,
                                                          real_data_dir):
    data = make_dataset(real_data_dir, tmp_path / "data" / "cats_and_dogs_filtered", 3)
    weights = tmp_path / "weights.h5"
    os.mkfifo(weights) if kind == "a FIFO" else weights.mkdir()
    out = catsdogs("run", "--data-dir", str(data), "--results-dir", str(tmp_path / "r"),
                   "--variants", "model4", "--weights", str(weights), block_tf=no_tf,
                   timeout=60)
    line = error_line(out, f"--weights '{weights}': is {kind}, not a file", "MobileNetV2")
    assert "no file at" not in line


def test_a_set_compared_with_itself_says_so(result_set, capsys):
    assert main(["compare", str(result_set), str(result_set)]) == 0
    out = capsys.readouterr().out
    assert "note: the candidate is the base itself" in out and "compared with themselves" in out
    other = write_result_set(result_set.parents[1], variants=["baseline_cnn"], seeds=[0, 1],
                             rng=7)
    assert main(["compare", str(result_set), str(other)]) in (0, 1)
    assert "base itself" not in capsys.readouterr().out


def test_the_environment_json_written_stays_readable_json(result_set):
    """The control for the nested case: the writer's own environment.json is flat."""
    assert isinstance(json.loads((result_set / "environment.json").read_text()), dict)

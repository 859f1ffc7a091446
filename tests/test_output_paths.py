"""Output paths are user input, checked before anything is computed (issue 24, classes 1 and 5).

Every output option of every command (report --out and --readme, trend --out, --json of
compare and trend, run --results-dir) goes through one check,
`catsdogs.resultset.outputs.check_output_path`: nothing may be written inside a result
set, replace one of its files, or land among the sets of `results/runs/`; a --json that
is a folder, or whose folder cannot be written, is refused naming the option. Each
refusal is one line and exit 2, comes before any set is read (a second set that does
not exist is never reached), and leaves every set byte for byte as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from resultsets import write_result_set
from test_bad_inputs import catsdogs, error_line, no_tensorflow, snapshot  # noqa: F401

from catsdogs.cli import main
from catsdogs.errors import UsageError
from catsdogs.resultset.outputs import check_output_path


@pytest.fixture
def sets(tmp_path) -> tuple[Path, Path]:
    """Two result sets under tmp_path/results/runs/ (two releases of one matrix)."""
    results = tmp_path / "results"
    base = write_result_set(results, variants=["baseline_cnn"], seeds=[0, 1])
    candidate = write_result_set(results, variants=["baseline_cnn"], seeds=[0, 1],
                                 tf_version="2.22.0", rng=1)
    return base, candidate


def one_line(capsys, code: int, *fragments: str) -> str:
    """The one error line of an in-process `catsdogs` call that returned `code`."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith("catsdogs: error: ") and "expected" in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# name: (argv with {base}, {candidate}, {missing}, {runs}; fragments of the line)
INSIDE_A_SET = {
    "compare --json over the candidate's runs.csv": (
        ["compare", "{base}", "{missing}", "--json", "{candidate}/runs.csv"],
        ["--json", "runs.csv", "is inside the result set"]),
    "compare --json over environment.json": (
        ["compare", "{base}", "{missing}", "--json", "{candidate}/environment.json"],
        ["--json", "is inside the result set"]),
    "compare --json as a new file in a set": (
        ["compare", "{base}", "{missing}", "--json", "{candidate}/verdicts.json"],
        ["--json", "verdicts.json", "is inside the result set"]),
    "trend --json over epochs.csv": (
        ["trend", "{base}", "{missing}", "--json", "{base}/epochs.csv"],
        ["--json", "is inside the result set"]),
    "report --out into a set": (["report", "{missing}", "--out", "{base}/sub"],
                                ["--out", "is inside the result set"]),
    "report --out a set itself": (["report", "{missing}", "--out", "{base}"],
                                  ["--out", "is a result set", "expected a folder of its own"]),
    "report --out through .. into a set": (
        ["report", "{missing}", "--out", "{runs}/elsewhere/../{base_name}/deeper/sub"],
        ["--out", "is inside the result set"]),
    "trend --out into a set": (["trend", "{missing}", "--out", "{candidate}/sub"],
                               ["--out", "is inside the result set"]),
    "report --readme inside a set": (
        ["report", "{missing}", "--out", "{runs}/../report/x", "--readme", "{base}/README.md"],
        ["--readme", "is inside the result set"]),
    "run --results-dir a set": (["run", "--synthetic", "--results-dir", "{base}"],
                                ["--results-dir", "is a result set"]),
    # Among the sets of runs/, where `trend results/runs/*` would read it as a set.
    "report --out in runs/": (["report", "{missing}", "--out", "{runs}/my-report"],
                              ["--out", "the folder of result sets"]),
    "report --out runs/ itself": (["report", "{missing}", "--out", "{runs}"],
                                  ["--out", "is '", "the folder of result sets"]),
    "compare --json in runs/": (["compare", "{base}", "{missing}", "--json", "{runs}/v.json"],
                                ["--json", "the folder of result sets"]),
    "run --results-dir runs/ itself": (["run", "--synthetic", "--results-dir", "{runs}"],
                                       ["--results-dir", "the folder of result sets"]),
}


@pytest.mark.parametrize("case", list(INSIDE_A_SET))
def test_an_output_inside_a_result_set_is_refused_before_any_set_is_read(case, sets,
                                                                         tmp_path, capsys):
    base, candidate = sets
    argv, fragments = INSIDE_A_SET[case]
    fill = {"base": str(base), "candidate": str(candidate), "runs": str(base.parent),
            "base_name": base.name, "missing": str(tmp_path / "no-such-set")}
    before = snapshot(tmp_path)
    line = one_line(capsys, main([arg.format(**fill) for arg in argv]), *fragments)
    assert "no-such-set" not in line  # refused before the sets were even looked at
    assert snapshot(tmp_path) == before  # nothing written, not even an empty folder
    assert not (tmp_path / "results" / "report").exists()


def test_a_symbolic_link_into_a_set_is_followed_and_refused(sets, tmp_path, capsys):
    base, candidate = sets
    (tmp_path / "innocent").symlink_to(candidate)
    before = snapshot(candidate)
    one_line(capsys, main(["compare", str(base), str(candidate), "--json",
                           str(tmp_path / "innocent" / "runs.csv")]),
             "--json", "innocent", "is inside the result set", candidate.name)
    assert snapshot(candidate) == before


def test_check_output_path_refuses_paths_that_do_not_exist_yet_inside_a_set(sets):
    """The public check itself (future commands call it): deep, not-yet-existing paths,
    files and folders; and a path beside the sets passes."""
    base, _ = sets
    for path, folder in ((base / "a" / "b" / "c.json", False), (base / "new", True),
                         (base / "runs.csv", False), (base.parent / "x" / "y", True)):
        with pytest.raises(UsageError):
            check_output_path("--out", path, folder=folder)
    report = base.parents[1] / "report" / "new" / "deeper"
    assert check_output_path("--out", report, folder=True) == report
    assert not report.exists()  # checks create nothing


def test_the_documented_layout_still_works(sets, tmp_path, capsys):
    """The control: default report and trend folders (report/ beside runs/) and a JSON
    beside the sets are written as before."""
    base, candidate = sets
    assert main(["report", str(base), "--no-samples"]) == 0
    assert main(["trend", str(base), str(candidate), "--json", str(tmp_path / "t.json")]) == 0
    assert main(["compare", str(base), str(candidate), "--json",
                 str(tmp_path / "results" / "verdicts.json")]) == 0
    assert (tmp_path / "results" / "report" / base.name / "table.md").is_file()
    assert (tmp_path / "t.json").is_file() and (tmp_path / "results" / "verdicts.json").is_file()


# ---------------------------------------------------------------- --json is user input (class 5)


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.json")
    return tmp_path / "pipe.json"


JSON_PATHS = {
    # name: (make(tmp_path) -> the --json path, fragments)
    "a folder": (lambda t: (t / "adir").mkdir() or t / "adir", ["is a folder",
                                                               "expected a file path"]),
    "a FIFO": (_fifo, ["is a FIFO", "expected a file path"]),
    "under a regular file": (lambda t: ((t / "afile").write_text("x"), t / "afile" / "v.json")[1],
                             ["'", "afile' is a file, not a folder"]),
    "in a folder that does not exist": (lambda t: t / "nowhere" / "v.json",
                                        ["nowhere' does not exist"]),
    "a name too long for the file system": (lambda t: t / ("v" * 300 + ".json"),
                                            ["is 305 bytes long", "at most 255 bytes"]),
}


@pytest.mark.parametrize("command", ["compare", "trend"])
@pytest.mark.parametrize("case", list(JSON_PATHS))
def test_json_that_cannot_be_written_is_refused_first_naming_the_option(case, command, sets,
                                                                        tmp_path, capsys):
    base, candidate = sets
    make, fragments = JSON_PATHS[case]
    target = make(tmp_path)
    before = snapshot(base.parent)
    argv = [command, str(base), str(tmp_path / "no-such-set"), "--json", str(target)]
    line = one_line(capsys, main(argv), "--json", *fragments)
    assert "no-such-set" not in line
    assert snapshot(base.parent) == before


def _read_only_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True,
                          check=False).returncode == 0


@pytest.mark.skipif(not _read_only_mounts(), reason="no user namespaces (unshare -rm) here")
def test_json_on_a_read_only_volume_is_refused_before_comparing(sets, tmp_path, request):
    """A read-only bind mount (root ignores permission bits, not a read-only mount)."""
    base, candidate = sets
    no_tf = request.getfixturevalue("no_tensorflow")
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    wrap = ["unshare", "-rm", "sh", "-c", f'mount --bind "{shelf}" "{shelf}" && '
            f'mount -o remount,bind,ro "{shelf}" && exec "$@"', "sh"]
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(no_tf), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([*wrap, sys.executable, "-m", "catsdogs", "compare", str(base),
                           str(candidate), "--json", str(shelf / "v.json")],
                          capture_output=True, text=True, env=environ, timeout=120,
                          check=False)
    error_line(done, "--json", "Read-only file system", "expected a file path in a writable")
    assert list(shelf.iterdir()) == []

"""Where `catsdogs report` writes, and what happens when it cannot: never into a result
set, a read-only or full location is one line and exit 2, and a report that failed
halfway leaves the previous report exactly as it was. Runs the real command in a
subprocess (the full disk is a file-size limit, the read-only folder a read-only bind
mount in a user namespace)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from resultsets import write_result_set

from catsdogs.cli import main
from catsdogs.report.build import README_END, README_START, default_out


def report(*args: str, limit_bytes: int | None = None, wrap: list[str] | None = None
           ) -> subprocess.CompletedProcess:
    """`python -m catsdogs report ARGS`, optionally under a file-size limit (writes past it
    fail with EFBIG, as on a full disk) or inside `wrap` (a command line ending in its
    program)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    command = [*(wrap or []), sys.executable, "-m", "catsdogs", "report", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit if limit_bytes else None, check=False)


def one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, lines
    assert lines[0].startswith("catsdogs: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def result_set(tmp_path_factory) -> Path:
    return write_result_set(tmp_path_factory.mktemp("results"), variants=["baseline_cnn"],
                            seeds=[0, 1])


def test_default_folder_is_report_beside_runs(result_set):
    folder = default_out([result_set])
    assert folder == result_set.parents[1] / "report" / result_set.name
    second = result_set.parent / "another-set"
    assert default_out([result_set, second]).name == f"{result_set.name}+1-more"


def test_out_pointing_at_a_result_set_is_refused(result_set):
    before = snapshot(result_set)
    one_error_line(report(str(result_set), "--out", str(result_set)), "is a result set",
                   "expected a folder of its own")
    assert snapshot(result_set) == before


def test_a_full_disk_is_one_line_and_the_previous_report_stays(result_set, tmp_path):
    out = tmp_path / "report"
    assert report(str(result_set), "--out", str(out)).returncode == 0
    before = snapshot(out)
    done = report(str(result_set), "--out", str(out), limit_bytes=20_000)
    one_error_line(done, f"cannot write the report into {str(out)!r}", "File too large",
                   "previous report there is unchanged")
    assert snapshot(out) == before  # no half-written file, no staging folder left


def _read_only_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mounts(), reason="no user namespaces (unshare -rm) here")
def test_a_read_only_folder_is_one_line_and_nothing_changes(result_set, tmp_path):
    out = tmp_path / "published"
    assert report(str(result_set), "--out", str(out)).returncode == 0
    before = snapshot(out)
    # Root ignores permission bits, so the folder is made read-only the way a read-only
    # volume is: a read-only bind mount, in a private mount namespace.
    wrap = ["unshare", "-rm", "sh", "-c",
            f'mount --bind "{out}" "{out}" && mount -o remount,bind,ro "{out}" && exec "$@"',
            "sh"]
    for target in (out, out / "new-subfolder"):
        done = report(str(result_set), "--out", str(target), wrap=wrap)
        one_error_line(done, str(target), "Read-only file system", "expected a writable folder")
    assert snapshot(out) == before


def test_readme_block_gets_the_table_and_a_link_to_every_figure(result_set, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Results\n\nprose stays\n\n{README_START}\nold\n{README_END}\n\nend\n")
    out = tmp_path / "report" / "set"
    done = report(str(result_set), "--out", str(out), "--readme", str(readme))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert text.startswith("# Results\n\nprose stays\n\n") and text.endswith("\n\nend\n")
    block = text.split(README_START)[1].split(README_END)[0]
    assert "\nold\n" not in block and "| baseline_cnn (model1) " in block
    for stem in ("accuracy_curves", "test_accuracy_bars", "step_times"):
        assert f"(report/set/{stem}.png)" in block and f"(report/set/{stem}.pdf)" in block
        assert (out / f"{stem}.png").is_file()
    assert "(report/set/index.html)" in block


def test_readme_without_markers_is_refused_before_anything_is_written(result_set, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    out = tmp_path / "report"
    one_error_line(report(str(result_set), "--out", str(out), "--readme", str(readme)),
                   str(readme), README_START)
    assert not out.exists() and readme.read_text() == "# no markers\n"


def test_unknown_column_is_one_line(result_set, tmp_path):
    one_error_line(report(str(result_set), "--out", str(tmp_path / "r"), "--columns",
                          "model,accuracy"), "--columns", "'accuracy'", "expected")
    assert not (tmp_path / "r").exists()


def test_a_report_from_csvs_never_imports_tensorflow(result_set, tmp_path):
    """`report` without a dataset folder reads CSVs only: TensorFlow stays unimported."""
    code = ("import sys; from catsdogs.cli import main; "
            f"main(['report', {str(result_set)!r}, '--out', {str(tmp_path / 'r')!r}]); "
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_tilde_in_report_trend_and_compare_paths_means_home(tmp_path, monkeypatch):
    """`--out ~/x` (quoted, or after `=`, the shell leaves `~` to us) is the home folder,
    never a folder literally named `~` in the working directory."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result_set = write_result_set(home / "results", variants=["baseline_cnn"], seeds=[0, 1])
    tilde_set = "~/" + str(result_set.relative_to(home))
    assert main(["report", tilde_set, "--out", "~/rep", "--no-samples"]) == 0
    assert main(["trend", tilde_set, "--out=~/tr", "--json", "~/trend.json"]) == 0
    assert main(["compare", tilde_set, tilde_set, "--json", "~/verdicts.json"]) == 0
    assert (home / "rep" / "index.html").exists() and (home / "tr" / "trend.png").exists()
    assert (home / "trend.json").exists() and (home / "verdicts.json").exists()
    assert not (work / "~").exists()


def test_a_report_killed_mid_way_leaves_no_staging_folder_after_the_next_run(result_set,
                                                                           tmp_path):
    """Issue 24: `kill -9` while a report renders leaves its hidden .report-* folder (no
    process can clean up after SIGKILL); the next successful report removes it, once it
    is older than the grace period a starting report needs to lock its own folder."""
    out = tmp_path / "report"
    command = [sys.executable, "-m", "catsdogs", "report", str(result_set), "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (out.is_dir() and list(out.glob(".report-*"))):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=60)
    (left,) = out.glob(".report-*")  # the debris a SIGKILL leaves
    long_ago = time.time() - 3600
    os.utime(left, (long_ago, long_ago))
    assert report(str(result_set), "--out", str(out)).returncode == 0
    assert not list(out.glob(".report-*")) and (out / "table.md").is_file()


def test_a_report_being_built_is_never_taken_for_debris(tmp_path):
    """A staging folder whose builder still holds its lock stays, however old."""
    from catsdogs.fsutil import remove_abandoned, staging_folder

    with staging_folder(tmp_path, ".report-") as live:
        os.utime(live, (0, 0))
        assert remove_abandoned(tmp_path, ".report-") == [] and live.is_dir()
    assert not live.exists()  # its builder removed it on the way out

"""`catsdogs run --resume SET` checks the whole set before it writes or trains: a set it
refuses is byte for byte what it was (sha256 of every file compared), and the refusal
comes before TensorFlow loads (a stand-in tensorflow package that raises on import
proves it). Also here: the other command-line faults of issue 10 that need no training
(a shard with no pairs, a results folder inside the dataset, `~` in paths, out-of-range
integers), and one real run whose rows cannot be written because the disk fails.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from external_tools import read_only_mounts, read_only_wrap
from test_bad_inputs import (  # noqa: F401 - cli and no_tensorflow are fixtures
    FAKE_ENV,
    catsdogs,
    cli,
    error_line,
    fake_epoch,
    fake_row,
    make_dataset,
    no_tensorflow,
    run_args,
)
from test_resultset_format import _set_cell

from catsdogs.dataset.scan import scan_dataset
from catsdogs.errors import ResultsError, UsageError
from catsdogs.resultset.load import load_result_sets
from catsdogs.resultset.schema import SCHEMA_VERSION
from catsdogs.resultset.store import ResultSet
from catsdogs.training.machine import fingerprint, machine_facts


@pytest.fixture
def no_tf(request) -> Path:
    return request.getfixturevalue("no_tensorflow")


@pytest.fixture
def dataset(tmp_path, real_data_dir) -> Path:
    return make_dataset(real_data_dir, tmp_path / "data" / "cats_and_dogs_filtered", 5)


@pytest.fixture
def resumable(tmp_path, dataset) -> Path:
    """A set this dataset could resume: its fingerprint, epochs 1, two rows."""
    env = dict(FAKE_ENV, dataset_fingerprint=scan_dataset(dataset).fingerprint,
               options={"epochs": 1, "batch_size": 32})
    result_set = ResultSet.create(tmp_path / "results", env)
    for seed in (0, 1):
        result_set.append_run(fake_row(f"r{seed}", seed), [fake_epoch(f"r{seed}", seed)])
    return result_set.path


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _json_edit(path: Path, **changes) -> None:
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **changes)))


def _append_text(path: Path, header_extra: str, row_extra: str) -> None:
    lines = path.read_text().splitlines()
    lines = [lines[0] + header_extra] + [line + row_extra for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")


def _crlf(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def _quote_header(path: Path) -> None:
    header, rest = path.read_text().split("\n", 1)
    path.write_text(",".join(f'"{name}"' for name in header.split(",")) + "\n" + rest)


def _lock_folder(result_set: Path) -> None:
    (result_set / ".lock").unlink(missing_ok=True)
    (result_set / ".lock").mkdir()


RESUME_CASES = {
    # name: (damage(set), extra argv, fragments)
    "newer schema": (lambda s: _json_edit(s / "environment.json",
                                          schema_version=SCHEMA_VERSION + 1), [],
                     ["--resume", "environment.json",
                      f"unknown schema_version '{SCHEMA_VERSION + 1}'"]),
    "extra column": (lambda s: _append_text(s / "runs.csv", ",note", ",hello"), [],
                     ["--resume", "runs.csv", "extra column(s) note"]),
    "byte-order mark": (lambda s: (s / "runs.csv").write_bytes(
        b"\xef\xbb\xbf" + (s / "runs.csv").read_bytes()), [], ["runs.csv", "byte-order mark"]),
    "corrupt environment.json": (
        lambda s: (s / "environment.json").write_text('{"schema_version": 2, "host"'), [],
        ["environment.json", "not readable JSON"]),
    "seed written as 0.0": (lambda s: _set_cell(s / "runs.csv", "seed", "1.0"), [],
                            ["runs.csv': line 3", "seed = '1.0'", "expected an integer"]),
    "last row cut short": (
        lambda s: (s / "runs.csv").write_bytes((s / "runs.csv").read_bytes()[:-25]), [],
        ["runs.csv': line 3 is cut short"]),
    # What the writer could not append to byte for byte is refused by the loader, before
    # training (it used to pass, train, and fail at the write).
    "CR LF line ends (saved by a spreadsheet)": (
        lambda s: _crlf(s / "runs.csv"), [], ["runs.csv': line 1 ends in CR LF",
                                              "expected plain LF line ends"]),
    "a quoted header (saved by another CSV tool)": (
        lambda s: _quote_header(s / "epochs.csv"), [],
        ["epochs.csv': line 1 is not byte for byte the header"]),
    "its lock file is a folder": (lambda s: _lock_folder(s), [],
                                  ["cannot append to this result set", ".lock"]),
    "other options": (lambda s: None, ["--epochs", "2"],
                      ["it was run with epochs=1", "this session has 2"]),
    "other data": (lambda s: _json_edit(s / "environment.json",
                                        dataset_fingerprint="0" * 64), [],
                   ["its dataset_fingerprint is '000", "expected the same data"]),
    "other machine": (lambda s: _json_edit(s / "environment.json", machine=_other_machine()),
                      [], ["it was recorded on machine", "this session runs on",
                           "usable CPUs (affinity) 4096 vs", "expected the same machine"]),
}


def _other_machine() -> dict:
    """This machine's facts, but with 4096 usable CPUs: a machine this one is not."""
    facts = dict(machine_facts(), cpus_usable=4096)
    return dict(facts, fingerprint=fingerprint(facts))


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_refused_resume_leaves_the_set_byte_identical_before_tensorflow(case, resumable,
                                                                       dataset, no_tf):
    damage, argv, fragments = RESUME_CASES[case]
    damage(resumable)
    before = checksums(resumable.parent)
    out = catsdogs(*run_args(dataset, resumable.parent.parent, "--seeds", "0,1,2",
                             "--resume", str(resumable), *argv), block_tf=no_tf)
    error_line(out, str(resumable), *fragments)
    assert checksums(resumable.parent) == before  # no row, no epoch row, no new set


@pytest.mark.parametrize("recorded", ["not recorded", "this machine"])
def test_an_intact_set_passes_the_same_checks(resumable, dataset, no_tf, recorded):
    """The control: without damage, the session gets past every check and only stops
    where TensorFlow is first needed; also when the set records this very machine, or
    (written before machines were recorded) none."""
    if recorded == "this machine":
        _json_edit(resumable / "environment.json", machine=machine_facts())
    out = catsdogs(*run_args(dataset, resumable.parent.parent, "--resume", str(resumable)),
                   block_tf=no_tf)
    assert "TensorFlow was imported" in out.stderr


def test_the_loader_refuses_exactly_what_the_writer_could_not_append_to(resumable):
    """One rule: for each damage, read_set (every command) and append_run (the writer)
    refuse with the same reason, so --resume learns it before training."""
    for damage, reason in ((_crlf, "ends in CR LF"), (_quote_header, "not byte for byte")):
        damage(resumable / "runs.csv")
        for attempt in (lambda: load_result_sets([resumable]),
                        lambda: ResultSet(resumable).append_run(fake_row("r9", 9),
                                                                [fake_epoch("r9", 9)])):
            with pytest.raises(ResultsError, match=reason):
                attempt()
        (resumable / "runs.csv").write_bytes((resumable / "runs.csv").read_bytes()
                                             .replace(b"\r\n", b"\n").replace(b'"', b""))
        assert len(load_result_sets([resumable])[0]) == 2  # undone: readable again


@pytest.mark.skipif(not read_only_mounts(), reason="no user namespaces (unshare -rm) here")
def test_resume_on_a_read_only_volume_is_refused_before_tensorflow(resumable, dataset, no_tf):
    """It used to train, then end in a traceback on the set's .lock (the run lost)."""
    before = checksums(resumable)
    wrap = read_only_wrap(resumable)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(no_tf),
                                                          environ.get("PYTHONPATH")]))
    done = subprocess.run([*wrap, sys.executable, "-m", "catsdogs",
                           *run_args(dataset, resumable.parent.parent, "--seeds", "0,1,2",
                                     "--resume", str(resumable))],
                          capture_output=True, text=True, env=environ, timeout=120, check=False)
    error_line(done, "--resume", "cannot append to this result set", "Read-only file system")
    assert checksums(resumable) == before


@pytest.mark.slow
def test_resume_under_another_tensorflow_release_is_refused_before_training(
        resumable, dataset, request):
    """A set recorded under TF 2.0.0 does not take this release's rows: `report` would
    average two releases as one. Refused once TensorFlow is loaded, before any model."""
    run = request.getfixturevalue("cli")
    environment = json.loads((resumable / "environment.json").read_text())
    (resumable / "environment.json").write_text(json.dumps(dict(environment,
                                                                tf_version="2.0.0")))
    before = checksums(resumable)
    out = run(*run_args(dataset, resumable.parent.parent, "--seeds", "0,1,2", "--resume",
                        str(resumable)))
    line = error_line(out, "--resume", "it was recorded with tf_version '2.0.0'",
                      "record this release in a new result set", tf_logs=True)
    assert "epoch" not in out.stderr.replace(line, "")  # nothing trained
    assert checksums(resumable) == before


def test_the_machine_identity_hook_names_the_software_compared():
    """The keys --resume must share with its set; machine identity joins this tuple."""
    from catsdogs.training.runner import RESUME_MUST_MATCH, check_resume_software

    assert set(RESUME_MUST_MATCH) >= {"tf_version", "keras_version", "python_version"}
    recorded = {"tf_version": "2.21.0", "keras_version": "3.15.1", "python_version": "3.11.7"}
    check_resume_software("S", recorded, dict(recorded))
    for key in RESUME_MUST_MATCH:
        with pytest.raises(UsageError, match=f"recorded with {key}"):
            check_resume_software("S", recorded, dict(recorded, **{key: "other"}))


# ---------------------------------------------------------------- other refusals


def test_a_shard_with_no_pairs_says_so_creates_nothing_and_the_others_merge(
        dataset, tmp_path, no_tf, resumable):
    results = tmp_path / "empty-shard"
    out = catsdogs(*run_args(dataset, results, "--seeds", "0", "--shard", "2/2"),
                   block_tf=no_tf)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == ("shard 2/2: no pairs to run (1 variant x seed pair(s) split "
                                  "2 ways leave this shard empty); nothing was created, the "
                                  "other shards cover every pair")
    assert not results.exists()
    report = catsdogs("report", str(resumable), "--out", str(tmp_path / "out"),
                      block_tf=no_tf)
    assert report.returncode == 0, report.stderr  # the other shard's set reports alone


def test_a_results_folder_inside_the_dataset_is_refused(dataset, no_tf):
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    out = catsdogs(*run_args(dataset, dataset / "results"), block_tf=no_tf)
    error_line(out, "--results-dir", "is inside the dataset folder", str(dataset))
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before


def test_tilde_is_expanded_in_flags_and_variables(dataset, tmp_path, no_tf):
    """`--results-dir=~/x` and CATSDOGS_DATA_DIR=~/... reach catsdogs unexpanded; they
    must mean $HOME, never a folder literally named `~`."""
    home = dataset.parent.parent  # the dataset is $HOME/data/cats_and_dogs_filtered
    out = catsdogs("run", "--results-dir=~/data/cats_and_dogs_filtered/res", "--epochs", "1",
                   env={"HOME": str(home), "CATSDOGS_DATA_DIR": "~/data/cats_and_dogs_filtered"},
                   block_tf=no_tf)
    error_line(out, f"--results-dir '{dataset}/res': is inside the dataset folder '{dataset}'")
    assert not any(p.name == "~" for p in Path.cwd().iterdir())
    assert not (dataset / "res").exists()


@pytest.mark.parametrize("argv,fragment", [
    (["--seeds", "0,4294967296"], "--seeds: expected seeds from 0 to 4294967295"),
    (["--seeds", "99999999999"], "got '99999999999'"),
    (["--batch-size", "100000"], "--batch-size: expected a positive integer of at most 8,192"),
    (["--epochs", "10001"], "--epochs: expected a positive integer of at most 10,000"),
])
def test_integers_out_of_range_are_refused_before_tensorflow(argv, fragment, dataset, tmp_path,
                                                             no_tf):
    out = catsdogs(*run_args(dataset, tmp_path / "results"), *argv, block_tf=no_tf)
    error_line(out, fragment)
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- a failing disk, for real


@pytest.mark.slow
def test_disk_failing_while_a_run_is_recorded_is_one_line_and_keeps_the_set(
        resumable, dataset, monkeypatch, request):
    """A real one-epoch run resumed into a set; the rename that records it fails with
    EIO. One line saying what failed and how to resume; the set as it was; no temp file."""
    from catsdogs.training.provenance import software

    run = request.getfixturevalue("cli")
    environment = json.loads((resumable / "environment.json").read_text())
    (resumable / "environment.json").write_text(json.dumps(environment | software()))
    before = checksums(resumable)  # recorded under this release: --resume may add to it
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(resumable)) and str(dst).endswith(".csv"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    out = run(*run_args(dataset, resumable.parent.parent, "--seeds", "0,1,2", "--batch-size",
                        "32", "--resume", str(resumable)))
    monkeypatch.setattr(os, "replace", real_replace)
    assert out.returncode == 1, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("catsdogs: error:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert f"could not write '{resumable}/" in lines[0] and "Input/output error (EIO)" in lines[0]
    assert f"--resume {str(resumable)!r}" in lines[0]
    assert checksums(resumable) == before
    runs, _, _ = load_result_sets([resumable])
    assert sorted(runs["seed"]) == [0, 1]

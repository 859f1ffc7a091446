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
from pathlib import Path

import pytest
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
from catsdogs.resultset.schema import SCHEMA_VERSION
from catsdogs.resultset.store import ResultSet, load_result_sets


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
                            ["runs.csv: line 3", "seed = '1.0'", "expected an integer"]),
    "last row cut short": (
        lambda s: (s / "runs.csv").write_bytes((s / "runs.csv").read_bytes()[:-25]), [],
        ["runs.csv: line 3 is cut short"]),
    "other options": (lambda s: None, ["--epochs", "2"],
                      ["it was run with epochs=1", "this session has 2"]),
    "other data": (lambda s: _json_edit(s / "environment.json",
                                        dataset_fingerprint="0" * 64), [],
                   ["its dataset_fingerprint is '000", "expected the same data"]),
}


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


def test_an_intact_set_passes_the_same_checks(resumable, dataset, no_tf):
    """The control: without damage, the session gets past every check and only stops
    where TensorFlow is first needed."""
    out = catsdogs(*run_args(dataset, resumable.parent.parent, "--resume", str(resumable)),
                   block_tf=no_tf)
    assert "TensorFlow was imported" in out.stderr


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
    error_line(out, f"--results-dir {dataset}/res: is inside the dataset folder {dataset}")
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
    run = request.getfixturevalue("cli")
    before = checksums(resumable)
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
    assert f"could not write {resumable}/" in lines[0] and "Input/output error (EIO)" in lines[0]
    assert f"--resume {resumable}" in lines[0]
    assert checksums(resumable) == before
    runs, _, _ = load_result_sets([resumable])
    assert sorted(runs["seed"]) == [0, 1]

"""The result-set format has one owner (catsdogs/resultset/store.py): its columns, their types and
units, results/README.md and the loader agree; every version stays readable; and the one
loader finds damaged rows instead of repairing or counting them."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from resultsets import write_result_set

from catsdogs.cli import main
from catsdogs.errors import ResultsError
from catsdogs.resultset.load import SOURCE, load_result_sets, read_set
from catsdogs.resultset.schema import (
    COLUMNS,
    EPOCH_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    SCHEMAS,
    row_check,
)
from catsdogs.resultset.store import ResultSet

ROOT = Path(__file__).resolve().parents[1]
#: The first real result set, committed with schema 1 (model1, 20 epochs, full data).
SCHEMA1_SET = Path(__file__).parent / "fixtures" / "20261125T232135Z_vm_tf2.21.0_cpu"
#: A committed schema 2 set (the TF 2.21.0 identity probe; read, never written).
SCHEMA2_SET = ROOT / "results" / "runs" / "20261127T053949Z_vm_tf2.21.0_cpu"


# ---------------------------------------------------------------- code and README agree


def _readme_table(heading: str) -> dict[str, str]:
    """column -> unit, from the table under `heading` in results/README.md; rows that
    name several columns ('a, b | u1, u2' or 'a, b | u') give each its unit."""
    text = (ROOT / "results" / "README.md").read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    units: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("column", "---"):
            continue
        names = [name.strip() for name in cells[0].split(",")]
        unit_list = [unit.strip() for unit in cells[1].split(",")]
        for i, name in enumerate(names):
            units[name] = unit_list[i] if len(unit_list) == len(names) else cells[1]
    return units


@pytest.mark.parametrize("heading,columns", [("runs.csv", RUN_COLUMNS),
                                             ("epochs.csv", EPOCH_COLUMNS)])
def test_readme_code_and_loader_types_name_the_same_columns_and_units(heading, columns):
    documented = _readme_table(heading)
    assert set(documented) == set(columns), (set(documented) ^ set(columns))
    for column in columns:
        assert column in COLUMNS, f"{column} has no type for the loader"
        if heading == "runs.csv" or column not in RUN_COLUMNS:
            assert documented[column] == COLUMNS[column].unit, column
    readme = (ROOT / "results" / "README.md").read_text()
    assert f"## Schema version {SCHEMA_VERSION}" in readme


def test_every_schema_column_has_a_type_and_the_current_schema_extends_the_older():
    for runs, epochs in SCHEMAS.values():
        assert all(column in COLUMNS for column in runs + epochs)
    old_runs, old_epochs = SCHEMAS[1]
    assert set(old_runs) <= set(RUN_COLUMNS) and set(old_epochs) <= set(EPOCH_COLUMNS)


# ---------------------------------------------------------------- schemas 1 and 2 stay readable


def _raw(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_committed_schema_1_set_reads_unchanged():
    runs, epochs, (environment,) = load_result_sets([SCHEMA1_SET])
    raw_runs, raw_epochs = _raw(SCHEMA1_SET / "runs.csv"), _raw(SCHEMA1_SET / "epochs.csv")
    assert environment["schema_version"] == 1 and len(runs) == len(raw_runs) == 1
    assert len(epochs) == len(raw_epochs)
    row, raw = runs.iloc[0], raw_runs[0]
    assert row["seed"] == int(raw["seed"]) and row["n_test"] == int(raw["n_test"])
    assert row["test_accuracy"] == float(raw["test_accuracy"])
    assert row["dataset_fingerprint_known"] is (raw["dataset_fingerprint_known"] == "true")
    assert row["dataset_changes"] is None and row["row_sha256"] is None  # not in schema 1
    assert row["machine_fingerprint"] is None and row["contended"] is None  # nor these
    assert list(runs.columns) == [*RUN_COLUMNS, SOURCE]
    assert list(epochs["epoch"]) == [int(r["epoch"]) for r in raw_epochs]


def test_the_committed_schema_2_set_reads_with_its_machine_not_recorded():
    runs, epochs, (environment,) = load_result_sets([SCHEMA2_SET])
    raw_runs, raw_epochs = _raw(SCHEMA2_SET / "runs.csv"), _raw(SCHEMA2_SET / "epochs.csv")
    assert environment["schema_version"] == 2 and "machine" not in environment
    assert len(runs) == len(raw_runs) == 3 and len(epochs) == len(raw_epochs)
    assert list(runs["row_sha256"]) == [r["row_sha256"] for r in raw_runs]  # schema 2 has it
    assert list(runs["step_time_ms"]) == [float(r["step_time_ms"]) for r in raw_runs]
    for column in ("machine_fingerprint", "contention", "contended"):  # not in schema 2
        assert runs[column].isna().all(), column
    for column in ("process_cpu_s", "other_cpu_s", "steal_s"):
        assert epochs[column].isna().all(), column
    assert list(runs.columns) == [*RUN_COLUMNS, SOURCE]
    assert list(epochs.columns) == [*EPOCH_COLUMNS, SOURCE]


def test_a_current_set_carries_its_machine_and_contention(tmp_path):
    """Schema 3's columns, kept by every later version."""
    folder = _current_set(tmp_path, machine_fingerprint="0123456789ab", contention=0.4,
                          contended=True)
    loaded = read_set(folder)
    assert loaded.schema_version == SCHEMA_VERSION >= 3
    (row,) = loaded.runs
    assert (row["machine_fingerprint"], row["contention"], row["contended"]) == \
        ("0123456789ab", 0.4, True)
    assert [e["other_cpu_s"] for e in loaded.epochs] == [0.25, 0.25]
    header = (folder / "epochs.csv").read_text().splitlines()[0].split(",")
    assert header[-5:] == ["step_ms_median", "process_cpu_s", "other_cpu_s", "steal_s",
                           "row_sha256"]


@pytest.mark.parametrize("source", [SCHEMA1_SET, SCHEMA2_SET], ids=["schema 1", "schema 2"])
def test_resume_into_an_older_set_appends_rows_of_its_own_schema(tmp_path, source):
    copy = shutil.copytree(source, tmp_path / source.name)
    version = json.loads((copy / "environment.json").read_text())["schema_version"]
    before = {name: (copy / name).read_bytes() for name in ("runs.csv", "epochs.csv")}
    result_set = ResultSet.open(copy)
    assert result_set.schema_version == version < SCHEMA_VERSION
    row = {key: value for key, value in _raw(copy / "runs.csv")[0].items()
           if key not in ("schema_version", "result_set", "row_sha256")}
    row.update(run_id="again", seed="9", dataset_changes="ignored by schema 1",
               machine_fingerprint="0123456789ab", contended=True)  # newer columns: dropped
    epochs = [{key: value for key, value in epoch.items()
               if key not in ("schema_version", "row_sha256")}
              | {"run_id": "again", "seed": "9", "other_cpu_s": 1.0}
              for epoch in _raw(copy / "epochs.csv")]
    result_set.append_run(row, epochs)  # with its epochs: its step time has their support
    after = (copy / "runs.csv").read_bytes()
    assert after.startswith(before["runs.csv"])
    assert (copy / "epochs.csv").read_bytes().startswith(before["epochs.csv"])
    new = after[len(before["runs.csv"]):].decode()
    assert new.startswith(f"{version},again,")
    assert new.count(",") == len(SCHEMAS[version][0]) - 1
    loaded = read_set(copy)
    assert [r["seed"] for r in loaded.runs][-1] == 9 and loaded.schema_version == version
    assert loaded.runs[-1]["machine_fingerprint"] is None


# ---------------------------------------------------------------- damaged rows are found


def _current_set(tmp_path: Path, **extra) -> Path:
    """A set of the current schema with one ok run of two epochs, through the real writer."""
    result_set = ResultSet.create(tmp_path / "results", {"host": "testhost",
                                                          "tf_version": "2.99"})
    row = {"run_id": "r0", "variant": "baseline_cnn", "seed": 0, "status": "ok",
           "n_test": 192, "test_correct": 127, "test_accuracy": 127 / 192,
           "started_utc": "2030-01-01T00:00:00+00:00",
           "finished_utc": "2030-01-01T00:05:00+00:00", **extra}
    epochs = [{"run_id": "r0", "variant": "baseline_cnn", "seed": 0, "epoch": e,
               "loss": 0.5, "accuracy": 0.7, "process_cpu_s": 1.5, "other_cpu_s": 0.25,
               "steal_s": 0.0} for e in (1, 2)]
    result_set.append_run(row, epochs)
    return result_set.path


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, count))


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _set_cell(path: Path, column: str, value: str) -> None:
    """Rewrite one cell of the last row, keeping every other byte (a hand edit)."""
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    cells = lines[-1].rstrip("\n").split(",")
    cells[header.index(column)] = value
    lines[-1] = ",".join(cells) + "\n"
    path.write_text("".join(lines))


DAMAGE = {
    # name: (damage(set folder), fragments of the one-line message)
    "last row cut short": (lambda s: _cut(s / "runs.csv", (s / "runs.csv").stat().st_size - 30),
                           ["runs.csv", "line 2 is cut short"]),
    "last row cut and given a line end": (
        lambda s: (s / "runs.csv").write_text((s / "runs.csv").read_text()[:-40] + "\n"),
        ["runs.csv", "line 2 has", "fields; expected"]),
    "epoch row cut short": (lambda s: _cut(s / "epochs.csv", (s / "epochs.csv").stat().st_size - 9),
                            ["epochs.csv", "line 3 is cut short"]),
    "a cell edited by hand": (lambda s: _set_cell(s / "runs.csv", "variant", "augmented_cnn"),
                              ["runs.csv", "line 2", "row_sha256 does not match"]),
    "seed written as 0.0": (lambda s: _set_cell(s / "runs.csv", "seed", "0.0"),
                            ["runs.csv", "line 2", "seed = '0.0'", "expected an integer"]),
    "count not an integer": (lambda s: _set_cell(s / "runs.csv", "n_test", "192.5"),
                             ["runs.csv", "line 2", "n_test = '192.5'", "integer"]),
    "accuracy disagrees with the counts": (
        lambda s: _set_cell(s / "runs.csv", "test_accuracy", "0.9"),
        ["runs.csv", "line 2", "test_accuracy = 0.9", "127/192", "expected them equal"]),
    "extra column": (lambda s: _edit(s / "runs.csv", "row_sha256\n", "row_sha256,note\n"),
                     ["runs.csv", "extra column(s) note"]),
    "byte-order mark": (lambda s: (s / "runs.csv").write_bytes(
        b"\xef\xbb\xbf" + (s / "runs.csv").read_bytes()), ["runs.csv", "byte-order mark"]),
    "newer schema": (lambda s: _edit(s / "environment.json",
                                     f'"schema_version": {SCHEMA_VERSION}',
                                     f'"schema_version": {SCHEMA_VERSION + 1}'),
                     ["environment.json", f"unknown schema_version '{SCHEMA_VERSION + 1}'",
                      "version(s) " + ", ".join(map(str, SCHEMAS))]),
    "corrupt environment.json": (lambda s: _cut(s / "environment.json", 40),
                                 ["environment.json", "not readable JSON"]),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_the_one_loader_refuses_damage_naming_file_and_line(case, tmp_path):
    damage, fragments = DAMAGE[case]
    folder = _current_set(tmp_path)
    read_set(folder)  # intact before the damage
    damage(folder)
    for read in (read_set, lambda path: load_result_sets([path]),
                 lambda path: ResultSet.open(path).done_pairs()):
        with pytest.raises(ResultsError) as caught:
            read(folder)
        message = str(caught.value)
        assert "\n" not in message and str(folder) in message
        for fragment in fragments:
            assert fragment in message, (fragment, message)


def test_a_schema_1_row_cut_short_is_found_too(tmp_path):
    copy = shutil.copytree(SCHEMA1_SET, tmp_path / SCHEMA1_SET.name)
    _cut(copy / "runs.csv", (copy / "runs.csv").stat().st_size - 12)
    with pytest.raises(ResultsError, match=r"runs.csv': line 2 is cut short"):
        read_set(copy)
    with pytest.raises(ResultsError, match="line 2 is cut short"):
        ResultSet.open(copy).append_run({"run_id": "x", "variant": "baseline_cnn",
                                         "seed": 3, "status": "failed"}, [])


def test_rows_written_by_the_writer_carry_a_matching_check(tmp_path):
    folder = _current_set(tmp_path)
    header, row = (folder / "runs.csv").read_text().splitlines()
    assert header.split(",")[-1] == "row_sha256" and re.fullmatch(r"[0-9a-f]{16}",
                                                                   row.split(",")[-1])
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["schema_version"] == SCHEMA_VERSION == 4


def test_the_writer_never_writes_a_row_the_loader_would_refuse(tmp_path):
    folder = _current_set(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    bad = {"run_id": "r1", "variant": "baseline_cnn", "seed": 1, "status": "ok",
           "n_test": 192, "test_correct": 127, "test_accuracy": 0.9}
    with pytest.raises(ResultsError, match="not recording it: .*test_accuracy = 0.9"):
        ResultSet.open(folder).append_run(bad, [])
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


# ---------------------------------------------------------------- numbers every command refuses


def _rewrite(path: Path, index: int, **cells: str) -> None:
    """Set cells of data row `index` (0 = the first) and recompute its row check: a
    consistent row, so only the rule under test can refuse it."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[index].update(cells)
    if "row_sha256" in rows[index]:
        rows[index]["row_sha256"] = row_check([v for k, v in rows[index].items()
                                               if k != "row_sha256"])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _step_time(folder: Path, value: str) -> None:
    """The first run's step time and its epochs' medians all `value` (files agreeing)."""
    run_id = _raw(folder / "runs.csv")[0]["run_id"]
    _rewrite(folder / "runs.csv", 0, step_time_ms=value)
    for index, epoch in enumerate(_raw(folder / "epochs.csv")):
        if epoch["run_id"] == run_id:
            _rewrite(folder / "epochs.csv", index, step_ms_median=value)


def _run_twice(folder: Path) -> None:
    """The first row again, under another seed: it counted as one more seed (n 2 -> 3)."""
    rows = _raw(folder / "runs.csv")
    with open(folder / "runs.csv", "a", newline="") as handle:
        csv.DictWriter(handle, list(rows[0]), lineterminator="\n").writerow(rows[0])
    _rewrite(folder / "runs.csv", len(rows), seed="7")


NUMBERS = {
    # name: (damage(set), fragments of the one line all three commands print)
    "a negative step time": (lambda s: _step_time(s, "-5.0"),
                             ["step_time_ms = '-5.0' is negative",
                              "expected a finite number >= 0 (in ms)"]),
    "an infinite step time": (lambda s: _step_time(s, "inf"),
                              ["step_time_ms = 'inf' is infinite", ">= 0 (in ms)"]),
    "a negative images/s": (lambda s: _rewrite(s / "runs.csv", 0, images_per_sec="-1600.0"),
                            ["images_per_sec = '-1600.0' is negative", "(in images/s)"]),
    "a negative count": (lambda s: _rewrite(s / "runs.csv", 0, n_train="-3"),
                         ["n_train = '-3'; expected an integer >= 0"]),
    "a run_id recorded twice with another seed": (
        _run_twice, ["runs.csv': line 4: run_id", "is recorded already (line 2)",
                     "expected each run once"]),
    "a step time outside its epochs'": (
        lambda s: _rewrite(s / "runs.csv", 0, step_time_ms="9999.0"),
        ["step_time_ms = 9999.0", "lies outside its per-epoch median step times",
         "expected runs.csv and epochs.csv to agree"]),
}


@pytest.mark.parametrize("case", list(NUMBERS))
def test_report_compare_and_trend_refuse_the_same_numbers_with_one_line(case, tmp_path,
                                                                       capsys):
    """`report` used to tabulate numbers `compare` refused (a negative step time, a run
    counted twice); now the one loader refuses them for every command."""
    folder = write_result_set(tmp_path / "a", variants=["baseline_cnn"], seeds=[0, 1])
    other = write_result_set(tmp_path / "b", variants=["baseline_cnn"], seeds=[0, 1], rng=3)
    damage, fragments = NUMBERS[case]
    damage(folder)
    lines = []
    for argv in (["report", str(folder), "--out", str(tmp_path / "out")],
                 ["compare", str(other), str(folder)], ["trend", str(other), str(folder)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        lines.append(err)
    assert len(set(lines)) == 1, lines  # the same words from every command
    assert str(folder) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "out").exists()


def test_the_writer_refuses_a_negative_step_time_and_a_run_id_twice(tmp_path):
    folder = _current_set(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    result_set = ResultSet.open(folder)
    ok = {"variant": "baseline_cnn", "status": "ok", "n_test": 192, "test_correct": 127,
          "test_accuracy": 127 / 192}
    with pytest.raises(ResultsError, match="not recording it: .*step_time_ms = '-5.0' is neg"):
        result_set.append_run(dict(ok, run_id="r1", seed=1, step_time_ms=-5.0), [])
    with pytest.raises(ResultsError, match="not recording it: .*run_id 'r0' is recorded"):
        result_set.append_run(dict(ok, run_id="r0", seed=2), [])
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before

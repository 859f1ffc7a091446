"""Verdicts that respect machines: step time only between runs of one machine, contended runs
left out, divergence across machines named as such, and every output saying so.

Result sets are test data written through the real writer (tests/resultsets.py), on
stand-in machines (catsdogs.training.machine with stand-in facts)."""

from __future__ import annotations

import json

import pytest
from resultsets import TEST_MACHINE, copy_result_set, stand_in_machine, write_result_set

from catsdogs.cli import main
from catsdogs.resultset.load import load_result_sets
from catsdogs.resultset.machines import speed_rule
from catsdogs.verdicts.compare import compare
from catsdogs.verdicts.output import compare_html, compare_json, compare_text
from catsdogs.verdicts.trend import build_trend

PINNED = stand_in_machine(cpus=[0])  # the stand-in machine under `taskset -c 0`
AVX512 = stand_in_machine(info={"vendor_id_raw": "TestVendor", "brand_raw": "test CPU",
                            "family": 6, "model": 1,
                            "flags": ["avx", "avx2", "fma", "avx512f", "avx512bw"]})
ONE = ["baseline_cnn"]


def _step(result, variant="baseline_cnn"):
    return next(m for m in result.verdicts() if m.variant == variant and m.metric == "step_time")


@pytest.fixture
def base(tmp_path):
    return write_result_set(tmp_path / "base", variants=ONE, step_ms=100.0, rng=1)


def test_one_machine_gets_a_step_time_verdict(base, tmp_path):
    slower = copy_result_set(base, tmp_path / "c", step_scale=2.0)
    result = compare([base], [slower])
    assert _step(result).verdict == "regression"
    assert result.base["machines"] == result.candidate["machines"] == [TEST_MACHINE["fingerprint"]]
    assert f"machine {TEST_MACHINE['fingerprint']})" in compare_text(result).splitlines()[0]


def test_different_machines_give_no_step_time_verdict_and_name_the_difference(base, tmp_path,
                                                                             capsys):
    pinned = copy_result_set(base, tmp_path / "c", step_scale=2.0, machine=PINNED)
    result = compare([base], [pinned])
    step = _step(result)
    assert step.verdict == "not comparable" and step.difference is None
    assert step.reasons[0] == ("not comparable: different machines (usable CPUs (affinity) 2 "
                               "vs 1); pass --allow-different-machines to compare them anyway")
    assert result.tests == 0  # accuracy identical, step time withheld: nothing in Holm's family
    assert result.exit_code() == 0 and result.exit_code(strict=True) == 3
    assert main(["compare", str(base), str(pinned)]) == 0
    out = capsys.readouterr().out
    assert "not comparable: different machines (usable CPUs (affinity) 2 vs 1)" in out
    assert f"machine {PINNED['fingerprint']})" in out and "1 not comparable" in out
    assert main(["compare", str(base), str(pinned), "--strict"]) == 3
    record = next(r for r in compare_json(result)["verdicts"] if r["metric"] == "step_time")
    assert record["verdict"] == "not comparable" and record["change"] is None
    assert "different machines" in compare_html(result)


def test_allow_different_machines_gives_the_verdict_labelled_in_every_output(base, tmp_path,
                                                                            capsys):
    pinned = copy_result_set(base, tmp_path / "c", step_scale=2.0, machine=PINNED)
    result = compare([base], [pinned], allow_different_machines=True)
    step = _step(result)
    assert step.verdict == "regression"
    label = "across different machines (--allow-different-machines): usable CPUs (affinity) 2 vs 1"
    assert label in step.reasons
    warning = [line for line in result.scope if "--allow-different-machines" in line]
    assert warning and warning[0].startswith("warning: step times compared across different")
    assert warning[0] in compare_text(result) and label in compare_text(result)
    assert label in compare_html(result).replace("&#x27;", "'")
    document = compare_json(result)
    assert warning[0] in document["scope"]
    assert label in next(r for r in document["verdicts"] if r["metric"] == "step_time")["reasons"]
    assert main(["compare", str(base), str(pinned), "--allow-different-machines"]) == 1


def test_a_set_without_a_recorded_machine_is_not_comparable_in_speed(base, tmp_path):
    old = write_result_set(tmp_path / "old", variants=ONE, step_ms=100.0, rng=1, machine=None)
    runs, _, (environment,) = load_result_sets([old])
    assert "machine" not in environment or environment["machine"] is None
    step = _step(compare([old], [base]))
    assert step.verdict == "not comparable"
    assert step.reasons[0].startswith("not comparable: machine not recorded (base 3 of 3 run(s);")


def test_divergence_across_machines_names_the_features_and_on_one_machine_does_not(base,
                                                                                   tmp_path):
    elsewhere = copy_result_set(base, tmp_path / "c", accuracy_shift=-0.05, machine=AVX512)
    here = copy_result_set(base, tmp_path / "d", accuracy_shift=-0.05)
    across = compare([base], [elsewhere]).results[0].identity.text()
    assert across.startswith("diverged at the test metrics")
    assert across.endswith("; on different machines (CPU features avx512f, avx512bw only in "
                           "candidate): bit-identical numerics are not expected across them")
    same = compare([base], [here]).results[0].identity
    assert same.status == "diverged" and same.machines is None
    assert "different machines" not in same.text()


def test_contended_runs_are_left_out_of_speed_verdicts_saying_how_many(tmp_path):
    busy = write_result_set(tmp_path / "a", variants=ONE, step_ms=100.0, rng=1,
                            contended=[("baseline_cnn", 0)])
    quiet = write_result_set(tmp_path / "b", variants=ONE, step_ms=100.0, rng=2)
    step = _step(compare([busy], [quiet]))
    assert step.base.n == 2 and step.candidate.n == 3
    assert any(r.startswith("1 contended run(s) left out (base 1, candidate 0): other "
                            "processes and the hypervisor took more than 25% of its CPUs")
               for r in step.reasons)
    all_busy = write_result_set(tmp_path / "c", variants=ONE, step_ms=100.0, rng=3,
                                contended=[("baseline_cnn", s) for s in (0, 1, 2)])
    step = _step(compare([all_busy], [quiet]))
    assert step.verdict == "not comparable"
    assert step.reasons[0].startswith("not comparable: every base run was contended")


def test_contended_runs_are_marked_in_the_scope_of_compare_and_trend(tmp_path, capsys):
    busy = write_result_set(tmp_path / "a", variants=ONE, rng=1, contended=[("baseline_cnn", 0)])
    quiet = write_result_set(tmp_path / "b", variants=ONE, rng=2, tf_version="2.22.0")
    text = compare_text(compare([busy], [quiet]))
    assert "warning: CONTENDED: 1 run(s) (baseline_cnn seed 0): other processes" in text
    trend = build_trend([busy, quiet])
    assert any(line.startswith("warning: CONTENDED: 1 run(s)") for line in trend.scope)


def test_trend_shows_the_step_time_its_verdict_used_not_the_contended_runs(tmp_path):
    """A contended run's step time measures the load: trend's table and figure leave it
    out, as the step-time verdict does, and say how many they left out."""
    from catsdogs.verdicts.output import trend_series, trend_text
    from catsdogs.verdicts.trend import trend_rows

    quiet = write_result_set(tmp_path / "a", variants=ONE, step_ms=100.0, rng=1)
    busy = write_result_set(tmp_path / "c", variants=ONE, step_ms=100.0, rng=2,
                            tf_version="2.22.0", contended=[("baseline_cnn", 0)])
    all_busy = write_result_set(tmp_path / "d", variants=ONE, step_ms=100.0, rng=3,
                                tf_version="2.23.0",
                                contended=[("baseline_cnn", s) for s in (0, 1, 2)])
    trend = build_trend([quiet, busy, all_busy])
    rows = trend_rows(trend)
    assert [row["step_contended"] for row in rows] == [0, 1, 3]
    assert rows[1]["step"].n == 2 and rows[2]["step"] is None
    table = trend_text(trend)
    assert "(1 contended left out)" in table and "(all 3 contended)" in table
    assert [len(v) for v in trend_series(trend)["baseline_cnn"]["step"]] == [3, 2, 0]


def test_trend_across_machines_says_why_step_time_has_no_verdict(tmp_path):
    before = write_result_set(tmp_path / "a", variants=ONE, rng=1)
    after = write_result_set(tmp_path / "b", variants=ONE, rng=2, tf_version="2.22.0",
                             machine=PINNED)
    trend = build_trend([before, after])
    (step,) = [m for m in trend.steps[0].results[0].metrics if m.metric == "step_time"]
    assert step.verdict == "not comparable"
    assert ("baseline_cnn step time TF 2.21.0 -> 2.22.0: not comparable: different machines "
            "(usable CPUs (affinity) 2 vs 1)") in "\n".join(trend.notes)
    allowed = build_trend([before, after], allow_different_machines=True)
    assert any("--allow-different-machines" in line for line in allowed.scope)
    assert main(["trend", str(before), str(after), "--out", str(tmp_path / "t"),
                 "--allow-different-machines", "--json", str(tmp_path / "t.json")]) == 0
    document = json.loads((tmp_path / "t.json").read_text())
    assert any("--allow-different-machines" in line for line in document["scope"])


def test_the_rule_is_data_that_lists_the_runs_it_keeps(tmp_path):
    a = write_result_set(tmp_path / "a", variants=ONE, rng=1, contended=[("baseline_cnn", 2)])
    runs, _, _ = load_result_sets([a])
    rule = speed_rule(runs, runs)
    assert rule.allowed and rule.differences == [] and len(rule.keep) == 2
    assert rule.notes == ["2 contended run(s) left out (base 1, candidate 1): other processes "
                          "and the hypervisor took more than 25% of its CPUs while it trained"]


def test_the_report_names_the_machine_and_marks_contended_runs(tmp_path):
    from catsdogs.report.build import render_report

    busy = write_result_set(tmp_path / "a", variants=ONE, rng=1, contended=[("baseline_cnn", 1)])
    old = write_result_set(tmp_path / "b", variants=ONE, rng=1, machine=None)
    printed = render_report([busy], out=tmp_path / "r1", samples=False)
    page = (tmp_path / "r1" / "index.html").read_text()
    for text in (printed, page, (tmp_path / "r1" / "table.md").read_text()):
        assert "CONTENDED: 1 run(s) (baseline_cnn seed 1)" in text
        assert f"{TEST_MACHINE['fingerprint']}: TestVendor test CPU (family 6 model 1), 2 of 2 " \
               "CPUs usable" in text
    render_report([old], out=tmp_path / "r2", samples=False)
    assert "<dt>machine</dt><dd>not recorded</dd>" in (tmp_path / "r2" / "index.html").read_text()
    assert "CONTENDED" not in (tmp_path / "r2" / "index.html").read_text()


def test_a_divergence_is_not_put_on_machines_that_differ_only_in_memory(base, tmp_path):
    """Memory changes speed, not kernels: runs that part on machines differing only in it
    are not excused by the machine, and the step time still names the difference."""
    bigger = stand_in_machine(memory_bytes=64 * 2**30)
    other = copy_result_set(base, tmp_path / "c", accuracy_shift=-0.05, machine=bigger)
    result = compare([base], [other])
    assert result.results[0].identity.machines is None
    assert _step(result).reasons[0].startswith("not comparable: different machines (memory "
                                               "GiB 8 vs 64)")


def test_the_report_table_times_only_uncontended_runs_and_says_how_many_it_left_out(tmp_path):
    """The report's step-time and throughput columns (and its figure) are over the runs a
    speed verdict would use: a contended run's timing is the load's."""
    import pandas as pd

    from catsdogs.report.numbers import step_spread
    from catsdogs.report.summary import summary_table

    busy = write_result_set(tmp_path / "a", variants=ONE, seeds=(0, 1, 2, 3), rng=4,
                            run_noise=0.3, contended=[("baseline_cnn", 0)])
    runs, _, _ = load_result_sets([busy])
    (row,) = summary_table(runs).to_dict("records")
    quiet = pd.read_csv(busy / "runs.csv").query("seed != 0")["step_time_ms"]
    assert row["n"] == 4 and row["n_step_contended"] == 1
    assert row["step_time_ms_median"] == pytest.approx(quiet.median())
    assert row["step_time_ms_max"] == pytest.approx(quiet.max())
    assert step_spread(row).endswith("; 1 contended left out)")
    every = write_result_set(tmp_path / "b", variants=ONE, rng=5,
                             contended=[("baseline_cnn", s) for s in (0, 1, 2)])
    (row,) = summary_table(load_result_sets([every])[0]).to_dict("records")
    assert step_spread(row) == "all 3 contended"

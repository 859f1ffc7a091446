"""`catsdogs ab`: the alternation, the stopping rule, the refusals and the outputs (issue 19).

Most tests drive the real coordinator (catsdogs.training.ab) with fake sides: in this
process, `SimSide`s on a simulated clock whose step times carry a known ratio, a drifting
machine load and noise (SIMULATED timings, not measurements); in real processes, the
stand-in worker tests/fixtures/fake_ab_worker.py, which speaks the real protocol
(ab_worker.serve) and reports step times without TensorFlow. One slow test runs the real
worker twice on the same interpreter (A/A) on synthetic data.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from test_bad_inputs import catsdogs, error_line, no_tensorflow  # noqa: F401 - a fixture

from catsdogs.envs import Environment
from catsdogs.errors import UsageError, quoted
from catsdogs.options import resolve
from catsdogs.progress import LineReporter
from catsdogs.training import ab
from catsdogs.training.machine import machine_facts

FAKE_WORKER = Path(__file__).parent / "fixtures" / "fake_ab_worker.py"


# ---------------------------------------------------------------- in-process fakes


class Machine:
    """A simulated machine: a clock, and a load that drifts slowly (a sine of
    `drift` amplitude over `period` simulated seconds) which every side's steps share."""

    def __init__(self, *, drift: float = 0.3, period: float = 97.0, noise: float = 0.03,
                 seed: int = 0) -> None:
        self.now, self.drift, self.period, self.noise = 0.0, drift, period, noise
        self.rng = np.random.default_rng(seed)
        self.log: list[tuple[str, str, object]] = []
        self.busy = False

    def load(self) -> float:
        return 1 + self.drift * math.sin(2 * math.pi * self.now / self.period)


class SimSide:
    """A side behind the coordinator's interface (ab.Side): each step takes `ms` x
    `ratio` x the machine's load x log-normal noise, in simulated time."""

    def __init__(self, name: str, machine: Machine, *, ratio: float = 1.0, ms: float = 100.0,
                 params: int | dict[str, int] = 72210, fingerprint: str = "f" * 64) -> None:
        self.name, self.machine, self.ratio, self.ms = name, machine, ratio, ms
        self.params, self.fingerprint = params, fingerprint

    def start(self, options, seed):
        return {"environment": {"tf_version": f"sim-{self.name}", "host": "sim"},
                "data": {"dataset": "synthetic", "fingerprint": self.fingerprint,
                         "n_train": 8, "n_validation": 8, "n_test": 4,
                         "limit": options["limit"], "batch_size": options["batch_size"],
                         "seed": seed, "skipped_images": 0,
                         "weights": options["weights"]}}

    def build(self, variant):
        self.machine.log.append((self.name, "build", variant))
        count = self.params.get(variant, 72210) if isinstance(self.params, dict) else self.params
        return {"params": {"params_total": count, "params_trainable": count,
                           "params_non_trainable": 0}}

    def train(self, steps, timeout):
        machine = self.machine
        assert not machine.busy, "two bursts at once"
        machine.busy = True
        machine.log.append((self.name, "train", steps))
        times = []
        for _ in range(steps):
            times.append(self.ms * self.ratio * machine.load()
                         * math.exp(machine.noise * machine.rng.standard_normal()))
            machine.now += times[-1] / 1000
        machine.busy = False
        return times

    def log_tail(self):
        return []

    def close(self):
        self.machine.log.append((self.name, "close", None))


ENVS = (Environment("sim:base", "/sim/base/python", {}),
        Environment("sim:candidate", "/sim/candidate/python", {"X": "1"}))


def run_sim(machine: Machine, *, ratio: float = 1.0, variants: str = "model1",
            budget_s: float = 300.0, base=None, candidate=None, weights: str = "imagenet",
            **settings):
    options = resolve({"variants": variants, "synthetic": True, "limit": "4",
                       "weights": weights}, environ={})
    sides = {"BASE": base or SimSide("base", machine),
             "CANDIDATE": candidate or SimSide("candidate", machine, ratio=ratio)}
    stream = io.StringIO()
    result = ab.compare_environments(ENVS, options, ab.Settings(budget_s=budget_s, **settings),
                                     LineReporter(stream), make_side=lambda env, role: sides[role],
                                     clock=lambda: machine.now)
    return result, stream.getvalue()


def trains(machine: Machine) -> list[tuple[str, int]]:
    return [(name, steps) for name, what, steps in machine.log if what == "train"]


# ---------------------------------------------------------------- the schedule


def test_looks_start_at_min_pairs_and_grow_by_about_half_each_time():
    found = ab.looks(400)
    assert found[:5] == [8, 12, 18, 28, 42]
    assert all(n % 2 == 0 for n in found) and found[-1] < 400
    assert all(1.4 <= b / a <= 1.6 for a, b in zip(found, found[1:]))


def test_warm_up_then_blocks_a_b_b_a_one_burst_at_a_time():
    machine = Machine(noise=0.001, drift=0.0)
    result, _ = run_sim(machine, ratio=1.2)
    order = trains(machine)
    warm = [("base", ab.WARMUP_STEPS), ("candidate", ab.WARMUP_STEPS)] * ab.WARMUP_BURSTS
    assert order[:len(warm)] == warm
    measured = order[len(warm):]
    steps = result.variants[0].burst_steps
    assert steps == math.ceil(ab.BURST_TARGET_S / 0.120)  # 2 s of the slower side's steps
    blocks = [measured[i:i + 4] for i in range(0, len(measured), 4)]
    assert blocks and all(block == [("base", steps), ("candidate", steps), ("candidate", steps),
                                    ("base", steps)] for block in blocks)
    assert [b.warmup for b in result.variants[0].bursts].count(True) == 2 * ab.WARMUP_BURSTS


def test_a_known_ratio_is_found_through_a_drifting_load():
    """The load swings +-30% over ~100 s (each side alone would see its own step time
    change by more than the effect), yet the pairs recover x1.10."""
    machine = Machine(drift=0.3, noise=0.03, seed=1)
    result, log = run_sim(machine, ratio=1.10)
    est = result.variants[0].estimate
    assert est.low < 1.10 < est.high and est.verdict == "regression"
    assert result.exit_code() == 1
    assert "decided early" in result.variants[0].stopped, log


def test_a_a_through_a_drifting_load_is_unchanged():
    machine = Machine(drift=0.3, noise=0.03, seed=2)
    result, _ = run_sim(machine, ratio=1.0)
    est = result.variants[0].estimate
    assert est.low < 1.0 < est.high and est.verdict == "unchanged"
    assert result.exit_code(strict=True) == 0


def test_a_change_at_the_threshold_runs_to_the_budget_and_is_inconclusive():
    machine = Machine(drift=0.3, noise=0.05, seed=3)
    result, log = run_sim(machine, ratio=1.05, budget_s=120.0)
    variant = result.variants[0]
    assert variant.estimate.verdict == "inconclusive"
    assert "budget" in variant.stopped and variant.elapsed_s <= 120.0
    assert result.exit_code() == 0 and result.exit_code(strict=True) == 3
    assert "ETA" in log  # the live progress, as lines


def test_max_pairs_ends_a_variant_that_never_decides():
    machine = Machine(drift=0.0, noise=0.05, seed=4)
    result, _ = run_sim(machine, ratio=1.05, budget_s=1e9, max_pairs=24)
    assert result.variants[0].estimate.pairs == 24
    assert "24 pairs" in result.variants[0].stopped


def test_every_variant_is_checked_before_any_is_measured_and_sides_are_closed():
    machine = Machine()
    base = SimSide("base", machine)
    other = SimSide("candidate", machine, params={"augmented_cnn": 72211})
    with pytest.raises(UsageError, match=r"^augmented_cnn: the sides do not build the same "
                       r"model: params_total is 72210 on BASE 'sim:base' and 72211 on CANDIDATE"
                       r" 'sim:candidate'; expected the same parameter counts$"):
        run_sim(machine, variants="model1,model2", base=base, candidate=other)
    assert trains(machine) == []  # model1 matched, but nothing was measured
    assert [entry for entry in machine.log if entry[1] == "close"] == [
        ("base", "close", None), ("candidate", "close", None)]


def test_different_data_is_refused_before_anything_is_built():
    machine = Machine()
    with pytest.raises(UsageError, match=r"^the sides do not use the same data: fingerprint "
                       r"is 'fff.*' on BASE 'sim:base' and 'eee.*' on CANDIDATE 'sim:candidate'; "
                       r"expected the same images"):
        run_sim(machine, candidate=SimSide("candidate", machine, fingerprint="e" * 64))
    assert [entry for entry in machine.log if entry[1] != "close"] == []


# ---------------------------------------------------------------- real processes


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A side's "interpreter": runs the stand-in worker with this test's Python."""
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_WORKER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _ab(*args, **kwargs):
    return catsdogs("ab", *args, "--synthetic", "--limit", "4", **kwargs)


def test_json_and_record_from_two_worker_processes_that_never_overlap(
        tmp_path, fake_python, no_tensorflow):  # noqa: F811 - the imported fixture
    """Through the real protocol and CLI (TensorFlow blocked in the coordinator): one
    JSON entry per variant, a record with both sides' provenance and every burst, exit 1
    for the 10% slowdown, and no burst of one side while the other's runs."""
    bursts = tmp_path / "bursts.log"
    out = tmp_path / "out"
    out.mkdir()
    done = _ab(str(fake_python), str(fake_python), "--variants", "model1,model2",
               "--candidate-env", "FAKE_AB_RATIO=1.1", "--candidate-env", "FAKE_AB_SEED=1",
               "--base-env", f"FAKE_AB_LOG={bursts}", "--candidate-env", f"FAKE_AB_LOG={bursts}",
               "--json", str(out / "ab.json"), "--results-dir", str(tmp_path / "results"),
               block_tf=no_tensorflow)
    assert done.returncode == 1, done.stderr
    document = json.loads((out / "ab.json").read_text())
    assert document["schema"] == "catsdogs-ab/1" and document["exit_code"] == 1
    assert [(v["variant"], v["verdict"]) for v in document["verdicts"]] == [
        ("baseline_cnn", "regression"), ("augmented_cnn", "regression")]
    for entry in document["verdicts"]:
        assert entry["low"] < entry["ratio"] < entry["high"] and entry["low"] > 1.05
    assert document["candidate"]["variables"]["FAKE_AB_RATIO"] == "1.1"
    record = json.loads(Path(document["record"]).read_text())
    assert Path(document["record"]).parent == out  # beside --json
    assert record["schema"] == "catsdogs-ab-record/1"
    assert record["provenance"]["base"]["host"] == "fake-host"
    assert record["machine"]["cpu_count"] == os.cpu_count()
    here = machine_facts()  # the facts and fingerprint every result set records
    assert record["machine"]["fingerprint"] == here["fingerprint"]
    assert record["machine"]["cpu_features"] == here["cpu_features"]
    assert len(record["machine"]["load_average_at_end"]) == 3
    assert len(record["bursts"]["baseline_cnn"]) == 2 * (ab.WARMUP_BURSTS
                                                         + document["verdicts"][0]["pairs"])
    assert "regression" in done.stdout and "record: " in done.stdout
    doc = (Path(__file__).parents[1] / "docs" / "verdicts.md").read_text()
    keys = {*document, *document["verdicts"][0], *document["base"], *document["data"],
            *record}
    assert [key for key in sorted(keys) if f"`{key}`" not in doc] == []  # all documented
    spans = sorted(tuple(map(float, line.split()[1:])) for line in bursts.read_text().splitlines())
    assert all(end <= nxt_start for (_, end), (nxt_start, _) in zip(spans, spans[1:]))
    pids = [line.split()[0] for line in bursts.read_text().splitlines()]
    assert len(set(pids)) == 2


def test_a_record_goes_to_results_ab_by_default(tmp_path, fake_python):
    done = _ab(str(fake_python), str(fake_python), "--variants", "model1",
               "--candidate-env", "FAKE_AB_SEED=1", "--results-dir", str(tmp_path / "results"),
               "--budget", "0.1")
    assert done.returncode == 0, done.stderr
    records = list((tmp_path / "results" / "ab").glob("*_fake-python_vs_fake-python.json"))
    assert len(records) == 1 and "unchanged" in done.stdout


def test_ctrl_c_stops_both_workers_and_records_nothing(tmp_path, fake_python):
    import signal
    import subprocess
    import time

    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "catsdogs", "ab", str(fake_python), str(fake_python),
         "--synthetic", "--limit", "4", "--variants", "model1", "--results-dir",
         str(tmp_path / "r"), "--base-env", f"FAKE_AB_LOG={tmp_path / 'bursts'}",
         "--candidate-env", "FAKE_AB_NOISE=0.5"],  # too noisy to decide before Ctrl-C
        stderr=subprocess.PIPE, text=True, env=environ)
    deadline = time.monotonic() + 60
    while not (tmp_path / "bursts").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1] == ("interrupted (Ctrl-C): both workers stopped; nothing "
                                       "was recorded")
    assert not (tmp_path / "r").exists()
    pid = int((tmp_path / "bursts").read_text().split()[0])
    with pytest.raises(ProcessLookupError):  # the base's worker is gone, not orphaned
        os.kill(pid, 0)


# ---------------------------------------------------------------- bad input: one line, exit 2


@pytest.fixture
def result_set(tmp_path: Path) -> Path:
    folder = tmp_path / "results" / "runs" / "20260101T000000Z_vm_tf2.21.0_cpu"
    folder.mkdir(parents=True)
    (folder / "runs.csv").write_text("schema_version\n")
    return folder


@pytest.mark.parametrize("case", ["missing interpreter", "folder without python", "empty spec",
                                  "bad tox name", "env without =", "budget zero",
                                  "json folder missing", "json inside a result set",
                                  "results inside a result set", "burst steps zero",
                                  "max slowdown not a number", "seed negative"])
def test_bad_input_is_one_line_exit_2_before_tensorflow(case, tmp_path, fake_python,
                                                        result_set, no_tensorflow):  # noqa: F811
    fake = str(fake_python)
    args, fragments = {
        "missing interpreter": ([str(tmp_path / "nope" / "python"), fake],
                                ["BASE", "no such file", "expected the path of a Python"]),
        "folder without python": ([fake, str(tmp_path)],
                                  ["CANDIDATE", "not a file (a folder without bin/python)"]),
        "empty spec": (["", fake], ["BASE: expected the path of a Python interpreter or "
                                    "tox:NAME, got ''"]),
        "bad tox name": (["tox:../x", fake], ["BASE tox:../x: expected a tox env name"]),
        "env without =": ([fake, fake, "--base-env", "TF_NUM_THREADS"],
                          ["--base-env: expected NAME=VALUE", "'TF_NUM_THREADS'"]),
        "budget zero": ([fake, fake, "--budget", "0"], ["--budget", "expected 0.01 to 1440"]),
        "json folder missing": ([fake, fake, "--json", str(tmp_path / "no" / "ab.json")],
                                ["--json: folder", "does not exist"]),
        "json inside a result set": ([fake, fake, "--json", str(result_set / "ab.json")],
                                     ["--json '", "is inside the result set", result_set.name]),
        "results inside a result set": ([fake, fake, "--results-dir", str(result_set)],
                                        ["--results-dir '", "is inside the result set"]),
        "burst steps zero": ([fake, fake, "--burst-steps", "0"],
                             ["--burst-steps", "expected a whole number from 1"]),
        "max slowdown not a number": ([fake, fake, "--max-slowdown", "abc"],
                                      ["--max-slowdown: expected a number, got 'abc'"]),
        "seed negative": ([fake, fake, "--seed", "-1"],
                          ["--seed: expected a whole number from 0 to 4294967295, got '-1'"]),
    }[case]
    before = sorted(tmp_path.rglob("*"))
    line = error_line(_ab(*args, block_tf=no_tensorflow), *fragments)
    assert sorted(tmp_path.rglob("*")) == before, line  # nothing written


@pytest.mark.parametrize("case", ["different models", "different data", "not a worker"])
def test_sides_that_do_not_match_or_cannot_start_are_one_line_exit_2(
        case, tmp_path, fake_python, no_tensorflow):  # noqa: F811
    fake = str(fake_python)
    garbage = tmp_path / "not-python"
    garbage.write_text("#!/bin/sh\necho 'Python 0.1 ready'\n")
    garbage.chmod(0o755)
    args, fragments = {
        "different models": ([fake, fake, "--candidate-env", "FAKE_AB_PARAMS=1"],
                             ["baseline_cnn: the sides do not build the same model: "
                              "params_total is 72210 on BASE", "and 1 on CANDIDATE"]),
        "different data": ([fake, fake, "--base-env", "FAKE_AB_FINGERPRINT=abc"],
                           ["the sides do not use the same data: fingerprint is 'abc' on "
                            "BASE"]),
        "not a worker": ([str(garbage), fake],
                         ["BASE", "its worker answered 'Python 0.1 ready' to start",
                          "expected catsdogs' worker protocol"]),
    }[case]
    error_line(_ab(*args, "--variants", "model1", "--results-dir", str(tmp_path / "r"),
                   block_tf=no_tensorflow), *fragments)
    assert not (tmp_path / "r").exists()  # nothing recorded


def test_a_worker_that_dies_mid_run_ends_the_session_in_one_line_recording_nothing(
        tmp_path, fake_python):
    """Progress lines came before (the session was under way); the refusal is the last
    line, exit 2, no traceback, and no record is written."""
    done = _ab(str(fake_python), str(fake_python), "--candidate-env", "FAKE_AB_DIE_AT=6",
               "--variants", "model1", "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"catsdogs: error: CANDIDATE {quoted(fake_python)}: its worker ended (exit status 3) "
        "during train: fake worker: killed in the middle of a burst; expected it to keep running "
        "(out of memory? killed?); nothing was recorded")
    assert not (tmp_path / "r").exists()


def test_an_interpreter_without_tensorflow_is_one_line_exit_2(tmp_path, fake_python):
    """A real virtual environment with nothing installed: its worker starts (the
    protocol needs only the standard library) and refuses at start, naming what is missing."""
    import venv

    venv.create(tmp_path / "bare", with_pip=False)
    line = error_line(_ab(str(tmp_path / "bare"), str(fake_python), "--variants", "model1",
                          "--results-dir", str(tmp_path / "r")),
                      "BASE", "no TensorFlow in", "No module named 'tensorflow'",
                      "expected an interpreter with TensorFlow")
    assert str(tmp_path / "bare") in line


def test_the_worker_refuses_another_release_than_asked(monkeypatch):
    """The worker's start runs the release check (CATSDOGS_EXPECT_TF, as a tox env sets
    it) before it decodes anything; the refusal comes back as one usage line."""
    from catsdogs.training.ab_worker import Trainer, _answer

    monkeypatch.setenv("CATSDOGS_EXPECT_TF", "1.0")
    options = resolve({"variants": "model1", "synthetic": True, "limit": "4"}, environ={})
    payload = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(options).items()}
    answer = _answer(Trainer(), {"op": "start", "options": payload, "seed": 0})
    assert answer["ok"] is False and answer["kind"] == "usage"
    assert answer["error"].startswith("CATSDOGS_EXPECT_TF=1.0: this environment imports "
                                      "TensorFlow ")


# ---------------------------------------------------------------- the real thing, once


@pytest.mark.slow
def test_real_a_a_smoke_on_synthetic_data(tmp_path):
    """The real worker on both sides (this interpreter twice), model1, 8 synthetic
    images, well under a minute of measuring: both sides report this TensorFlow, the
    bursts ran, and the exit status matches the verdict. (Whether A/A is `unchanged`
    within x0.98 to x1.02 is measured on an idle machine, not in CI.)"""
    import tensorflow as tf

    done = _ab(sys.executable, sys.executable, "--variants", "model1", "--budget", "0.3",
               "--burst-steps", "5", "--json", str(tmp_path / "ab.json"),
               "--results-dir", str(tmp_path / "results"), timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    document = json.loads((tmp_path / "ab.json").read_text())
    (entry,) = document["verdicts"]
    assert entry["variant"] == "baseline_cnn" and entry["pairs"] >= 2
    assert entry["low"] <= entry["ratio"] <= entry["high"]
    assert done.returncode == (1 if entry["verdict"] == "regression" else 0)
    record = json.loads(Path(document["record"]).read_text())
    for side in ("base", "candidate"):
        assert record["provenance"][side]["tf_version"] == tf.__version__
        assert record["provenance"][side]["dataset"] == "synthetic"
    assert entry["params_total"] == 72210 and entry["burst_steps"] == 5


def test_a_record_is_never_written_over(tmp_path):
    from catsdogs.training.ab_report import plan_outputs, write_outputs

    result, _ = run_sim(Machine(seed=5))
    outputs = plan_outputs(tmp_path / "ab.json", str(tmp_path), ("a", "b"))
    first = write_outputs(result, outputs, ["catsdogs", "ab"])
    second = write_outputs(result, outputs, ["catsdogs", "ab"])
    assert first.record == outputs.record and second.record.name.endswith("_a_vs_b-2.json")
    assert json.loads((tmp_path / "ab.json").read_text())["record"] == str(second.record)
    assert json.loads(first.record.read_text())["schema"] == "catsdogs-ab-record/1"


def test_the_table_says_model4_ran_without_pretrained_weights(tmp_path):
    from catsdogs.training.ab_report import plan_outputs, render_text

    result, _ = run_sim(Machine(seed=6), variants="model4", weights="none")
    text = render_text(result, plan_outputs(None, str(tmp_path), ("a", "b")))
    assert "warning: model4 without pretrained weights (--weights none)" in text
    assert "warning: synthetic data" in text and "transfer_mobilenetv2 (model4)" in text


def test_the_table_names_the_machine_by_fingerprint_not_only_by_host(tmp_path):
    """A/B figures are only comparable on one machine, so the table a reader quotes names it
    the way every result set does (fingerprint, CPU, features), not by the host name."""
    from catsdogs.training.ab_report import plan_outputs, render_text
    from catsdogs.training.machine import fingerprint, machine_facts

    result, _ = run_sim(Machine(seed=7))
    text = render_text(result, plan_outputs(None, str(tmp_path), ("a", "b")))
    machine_line = next(line for line in text.splitlines() if line.startswith("machine "))
    assert fingerprint(machine_facts()) in machine_line and "CPUs usable" in machine_line

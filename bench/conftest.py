"""pytest-benchmark plumbing for the catsdogs bench.

The options are the CLI's own (catsdogs.options), so `pytest bench --epochs 1` and
`catsdogs run --epochs 1` mean the same. One result set per session: the controller
creates it, and under pytest-xdist every worker writes into that same set (rows are
appended under a lock), each worker on its own GPU.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from catsdogs.errors import UsageError
from catsdogs.options import add_to_pytest, from_pytest

_STATE: dict = {}


def pytest_addoption(parser):
    add_to_pytest(parser)


def _options(config):
    """The session's checked options; a bad value stops pytest with one line."""
    if "options" not in _STATE:
        try:
            _STATE["options"] = from_pytest(config)
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    return _STATE["options"]


def _gpu_ids() -> list[str]:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists
    (no TensorFlow import, so the controller never claims GPU memory)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]
    except (OSError, subprocess.SubprocessError):
        return []


def _benchmark_only_under_xdist(config) -> None:
    """pytest-benchmark switches its own timing off under xdist (-n) and then refuses
    --benchmark-only as contradicting that, so `pytest bench -n 2 --benchmark-only` would
    train nothing. Every test here is a benchmark, so --benchmark-only deselects nothing:
    drop it (before pytest-benchmark, whose pytest_configure runs last). Each run is then
    called once, untimed by pytest-benchmark; its rows, with our own step and wall
    times, still land in the session's result set."""
    xdist = config.getoption("dist", "no") != "no" or os.environ.get("PYTEST_XDIST_WORKER")
    if xdist and config.getoption("benchmark_only", False):
        config.option.benchmark_only = False
        if getattr(config, "workerinput", None) is None:
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                "--benchmark-only is ignored under -n: pytest-benchmark does not time "
                "tests under xdist; every run is still trained once and recorded in the "
                "result set"), stacklevel=2)


def pytest_configure(config):
    _benchmark_only_under_xdist(config)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        gpus = workerinput.get("catsdogs_gpus") or []
        worker = int(re.sub(r"\D", "", workerinput.get("workerid", "gw0")) or 0)
        if gpus:  # one GPU per worker, before TensorFlow is imported in this process
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[worker % len(gpus)]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: every worker gets the session's one result set and a GPU list."""
    node.workerinput["catsdogs_result_set"] = str(_session(node.config).result_set.path)
    node.workerinput["catsdogs_gpus"] = _gpu_ids()


def pytest_generate_tests(metafunc):
    """One benchmark per (variant, seed) of this shard, with readable ids."""
    if {"variant", "seed"} <= set(metafunc.fixturenames):
        from catsdogs.runner import matrix

        options = _options(metafunc.config)
        pairs = matrix(options.variants, options.seeds, options.shard)
        metafunc.parametrize(("variant", "seed"), pairs,
                             ids=[f"{variant}-seed{seed}" for variant, seed in pairs])


class BenchSession:
    """What every benchmark of the session shares: options, data, the result set."""

    def __init__(self, config):
        from catsdogs import runner
        from catsdogs.record import ResultSet

        self.options = _options(config)
        try:
            self.prepared = runner.prepare(self.options)
            workerinput = getattr(config, "workerinput", None)
            if workerinput and workerinput.get("catsdogs_result_set"):
                self.result_set = ResultSet.open(workerinput["catsdogs_result_set"])
            else:
                self.result_set = runner.open_result_set(self.prepared)
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.done = self.result_set.done_pairs() if self.options.resume else set()
        self.rows: list[dict] = []

    def splits(self, seed: int):
        """Fresh splits for one run, loaded outside the timed call. Decoded images are
        cached per process, so this is cheap; the datasets themselves must be new for
        every run, since a dataset carries its reshuffle state from run to run."""
        from catsdogs.runner import load_data

        return load_data(self.prepared, seed)


def _session(config) -> BenchSession:
    if "session" not in _STATE:
        _STATE["session"] = BenchSession(config)
    return _STATE["session"]


@pytest.fixture(scope="session")
def bench_session(request) -> BenchSession:
    return _session(request.config)


def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark's machine id knows the CPU only; a TF benchmark needs the rest."""
    from catsdogs import provenance

    facts = provenance.collect()
    machine_info["catsdogs"] = {key: facts.get(key, "") for key in (
        "tf_version", "keras_version", "cuda_version", "cudnn_version", "device", "gpu_name",
        "gpu_count", "gpu_driver", "git_commit", "host")}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say where this session's rows went, so users find the CSVs."""
    session = _STATE.get("session")
    if session is not None:
        terminalreporter.write_line(f"catsdogs result set: {session.result_set.path} "
                                    f"({len(session.rows)} run(s) recorded by this process)")

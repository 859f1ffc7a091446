"""pytest-benchmark plumbing for the catsdogs bench.

The options are the CLI's own (catsdogs.options), so `pytest bench --epochs 1` and
`catsdogs run --epochs 1` mean the same, and the session starts as `catsdogs run` does:
`runner.start_session` checks options, dataset, model4's weights and the results folder
once, at session start, and a refusal is pytest's usage error (one line, exit 4) instead
of one error per benchmark. Progress goes straight to the terminal (live bars) or the log
(one line per epoch), with ETAs. One result set per session: the controller creates it,
and under pytest-xdist every worker writes into that same set (rows are appended under a
lock), each worker on its own GPU. Session state lives on `config.stash`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from typing import Any

import pytest

from catsdogs.errors import UsageError, system_refusal
from catsdogs.options import BenchOptions, add_to_pytest, from_pytest
from catsdogs.training import devices

SPEED_MARKER = "speed: the input-pipeline/epoch-time benchmark (opt-in: -m speed or -k speed)"


@dataclasses.dataclass
class BenchState:
    """What the whole session shares, kept on config.stash."""

    options: BenchOptions
    session: Any = None  # runner.Session, after the start-up checks
    reporter: Any = None  # progress.Reporter
    todo: list = dataclasses.field(default_factory=list)
    rows: list = dataclasses.field(default_factory=list)
    signals: dict = dataclasses.field(default_factory=dict)  # handlers to restore


STATE = pytest.StashKey[BenchState]()


def pytest_addoption(parser):
    add_to_pytest(parser)


def _state(config) -> BenchState:
    """The session's state; the options are checked on first use (a bad value stops
    pytest with one line)."""
    if STATE not in config.stash:
        try:
            config.stash[STATE] = BenchState(from_pytest(config))
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[STATE]


def _xdist(config) -> bool:
    return config.getoption("dist", "no") != "no" or bool(os.environ.get("PYTEST_XDIST_WORKER"))


def _benchmark_only_under_xdist(config) -> None:
    """pytest-benchmark switches its own timing off under xdist (-n) and then refuses
    --benchmark-only as contradicting that, so `pytest bench -n 2 --benchmark-only` would
    train nothing. Every test here is a benchmark, so --benchmark-only deselects nothing:
    drop it (before pytest-benchmark, whose pytest_configure runs last). Each run is then
    called once, untimed by pytest-benchmark; its rows, with our own step and wall
    times, still land in the session's result set."""
    if _xdist(config) and config.getoption("benchmark_only", False):
        config.option.benchmark_only = False
        if getattr(config, "workerinput", None) is None:
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                "--benchmark-only is ignored under -n: pytest-benchmark does not time "
                "tests under xdist; every run is still trained once and recorded in the "
                "result set"), stacklevel=2)


def pytest_configure(config):
    config.addinivalue_line("markers", SPEED_MARKER)
    _benchmark_only_under_xdist(config)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        gpu = devices.worker_gpu(workerinput.get("catsdogs_gpus") or [],
                                 workerinput.get("workerid", "gw0"))
        if gpu is not None:  # one GPU per worker, before TensorFlow is imported here
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def _terminal():
    """A stream on the real stderr, outside pytest's output capture, so progress shows
    while a benchmark runs (a duplicate of fd 2 is not redirected by fd capture)."""
    return open(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")


def _install_signals(state: BenchState) -> None:
    """SIGTERM unwinds the current run like Ctrl-C, as in `catsdogs run`; the previous
    handlers come back at the end of the session."""
    from catsdogs.training import runner
    state.signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    runner.install_signal_handlers()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Refuse once, before any test: everything that makes the session unusable."""
    config = session.config
    state = _state(config)
    if config.option.collectonly:
        return  # listing the benchmarks needs no data
    from catsdogs.progress import make_reporter
    from catsdogs.training import runner

    workerinput = getattr(config, "workerinput", None)
    worker = workerinput.get("workerid", "") if workerinput else ""
    state.reporter = make_reporter(_terminal(), prefix=f"[{worker}] " if worker else "",
                                   live=False if _xdist(config) else None)
    try:
        state.session = runner.start_session(
            state.options, state.reporter,
            result_set=workerinput.get("catsdogs_result_set") if workerinput else None)
    except UsageError as exc:
        state.reporter.close()
        raise pytest.UsageError(str(exc)) from None
    except OSError as exc:  # what no check foresaw: one line, not an INTERNALERROR
        state.reporter.close()
        raise pytest.UsageError(system_refusal(exc)) from None
    state.todo = state.session.todo()
    _install_signals(state)


def pytest_sessionfinish(session):
    state = session.config.stash.get(STATE, None)
    if state is not None:
        for sig, handler in state.signals.items():
            signal.signal(sig, handler)
        if state.reporter is not None:
            state.reporter.close()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: every worker gets the session's one result set and a GPU list."""
    node.workerinput["catsdogs_result_set"] = str(_state(node.config).session.result_set.path)
    node.workerinput["catsdogs_gpus"] = devices.visible_gpus()


def pytest_generate_tests(metafunc):
    """One benchmark per (variant, seed) of this shard, with readable ids."""
    if {"variant", "seed"} <= set(metafunc.fixturenames):
        from catsdogs.training.runner import matrix

        options = _state(metafunc.config).options
        pairs = matrix(options.variants, options.seeds, options.shard)
        metafunc.parametrize(("variant", "seed"), pairs,
                             ids=[f"{variant}-seed{seed}" for variant, seed in pairs])


def _asks_for_speed(config) -> bool:
    """The speed benchmark runs only when asked for by name or marker."""
    return "speed" in (config.getoption("keyword") or "") + (config.getoption("markexpr") or "")


def pytest_collection_modifyitems(config, items):
    """The speed benchmark is opt-in: it trains on its own schedule, and a `--epochs 1`
    smoke of the matrix must not spend minutes in it."""
    if _asks_for_speed(config):
        return
    kept = [item for item in items if item.get_closest_marker("speed") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_collection_finish(session):
    """The runs this process will train, in order, so the progress counts "run k of N"
    and the matrix ETA over what was selected (-k, --shard, --resume), not the whole
    matrix. Under -n each worker counts every selected run (xdist decides later which
    worker trains which)."""
    state = session.config.stash.get(STATE, None)
    if state is None or state.reporter is None:
        return
    selected = [(item.callspec.params["variant"], item.callspec.params["seed"])
                for item in session.items if hasattr(item, "callspec")
                and {"variant", "seed"} <= set(item.callspec.params)]
    state.reporter.start_session([pair for pair in selected if pair in state.todo],
                                 state.options.epochs)


@pytest.fixture(scope="session")
def bench_state(request) -> BenchState:
    state = _state(request.config)
    if state.session is None:
        pytest.skip("the session did not start (--collect-only)")
    return state


@pytest.fixture
def fresh_line(request) -> None:
    """Our progress starts on a line of its own, not after pytest's progress dots."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.ensure_newline()


def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark's machine id knows the CPU only; a Keras benchmark needs the rest
    (the backend and its versions included), and the machine facts and fingerprint every
    row of our result sets carries."""
    from catsdogs.training import provenance
    facts = provenance.collect()
    machine_info["catsdogs"] = {key: facts.get(key, "") for key in (
        "tf_version", "keras_version", "backend", "jax_version", "jaxlib_version",
        "torch_version", "cuda_version", "cudnn_version", "device", "gpu_name",
        "gpu_count", "gpu_driver", "git_commit", "host", "machine")}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say where this session's rows went, so users find the CSVs."""
    state = config.stash.get(STATE, None)
    if state is not None and state.session is not None and state.session.started:
        terminalreporter.write_line(f"catsdogs result set: {state.session.result_set.path} "
                                    f"({len(state.rows)} run(s) recorded by this process)")

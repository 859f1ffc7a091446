"""The worker of `catsdogs ab` (a process per side that trains when told to) and its client.

Protocol (version PROTOCOL), one JSON object per line. The worker says first
`{"event": "hello", "protocol": 1, ...}`; then the coordinator sends requests and gets
one answer each, `{"ok": true, ...}` or `{"ok": false, "kind": "usage"|"no_tensorflow"|
"crash", "error": "<one line>"}`:

    {"op": "start", "options": {...BenchOptions...}, "seed": S}
        on the side's Keras backend (its own CATSDOGS_BACKEND when its environment sets
        one, e.g. tox:jax or --candidate-env CATSDOGS_BACKEND=torch, else the options'),
        imports TensorFlow where that is the backend (refused when it is missing, or
        another release than CATSDOGS_EXPECT_TF names), checks and decodes the data once
        as `catsdogs run` does (`runner.prepare`, `runner.load_data`) and answers with the
        provenance (`environment`) and the data (`data`: dataset, fingerprint, image
        counts);
    {"op": "build", "variant": NAME}
        builds and compiles the variant as a run does (seeded; `models.build_model`) and
        answers its parameter counts (`params`);
    {"op": "train", "steps": N}
        trains N steps with `model.fit` and train.py's own step timer (each step ends
        when its loss has been read back on the host) and answers `step_ms`;
    {"op": "quit"}  (or the end of stdin): the worker exits.

The protocol has its own file descriptor: the worker keeps a copy of its stdout for it
and points fd 1 (and sys.stdout) at stderr, so nothing TensorFlow, Keras or a library
prints can corrupt an answer. The variables of a side are in the worker's environment
from its start (`envs.child_environ`), before anything imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from catsdogs.envs import Environment, child_environ, project_root
from catsdogs.errors import UsageError, quoted

PROTOCOL = 1
HELLO_TIMEOUT_S = 120.0  # Python start and this module's imports (no TensorFlow yet)
START_TIMEOUT_S = 1800.0  # TensorFlow's import and the first decode of every image
BUILD_TIMEOUT_S = 600.0
LOG_TAIL_LINES = 40  # of a worker's stderr, kept in the record


class NoTensorFlow(Exception):
    """The side's interpreter cannot import TensorFlow (or a dependency of catsdogs)."""


# ---------------------------------------------------------------- the worker's end


class Trainer:
    """The worker's state: the prepared data once, then one model at a time."""

    def __init__(self) -> None:
        self.prepared = self.splits = self.model = self.train_data = None
        self.seed = 0

    def start(self, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """Import the backend (TensorFlow: check the release), check the data, decode
        the images."""
        from catsdogs.backend import TENSORFLOW, parse_backend

        side_backend = os.environ.get("CATSDOGS_BACKEND", "").strip()
        options = dict(options, backend=parse_backend(side_backend) if side_backend
                       else options.get("backend", TENSORFLOW))
        if options["backend"] == TENSORFLOW:
            try:
                import tensorflow  # noqa: F401
            except ImportError as exc:
                raise NoTensorFlow(f"no TensorFlow in {quoted(sys.executable)} "
                                   f"({type(exc).__name__}"
                                   f": {exc}); expected an interpreter with TensorFlow and "
                                   "catsdogs' dependencies installed") from None
        from catsdogs.options import BenchOptions
        from catsdogs.training import runner

        checked = BenchOptions(**{key: tuple(value) if isinstance(value, list) else value
                                  for key, value in options.items()})
        self.prepared, self.seed = runner.prepare(checked), seed
        self.splits = runner.load_data(self.prepared, seed)
        info = self.prepared.info
        return {"environment": self.prepared.environment,
                "data": {"dataset": self.prepared.dataset, "fingerprint": info.fingerprint,
                         "fingerprint_known": info.fingerprint_known,
                         "limit": checked.limit, "batch_size": checked.batch_size,
                         "weights": checked.weights,
                         "seed": seed, "skipped_images": len(self.splits.skipped),
                         **{f"n_{split}": self.splits.count(split)
                            for split in ("train", "validation", "test")}}}

    def build(self, variant: str) -> dict[str, Any]:
        """The variant, seeded and compiled as `train_run` builds it; the previous model
        is dropped first."""
        from catsdogs.backend import keras_module
        from catsdogs.models import build_model, get_variant, parameter_counts
        from catsdogs.training.train import seed_everything

        self.model = None
        keras_module().backend.clear_session()
        seed_everything(self.seed)
        name = get_variant(variant).name
        self.model = build_model(name, weights=self.prepared.options.weights, seed=self.seed)
        self.train_data = self.splits.train.repeat()  # bursts of any length
        return {"variant": name, "params": parameter_counts(self.model)}

    def train(self, steps: int) -> dict[str, Any]:
        """`steps` training steps of the current model, timed as train.py times them."""
        from catsdogs.training.train import StepTimer, TrainingDiverged, make_callbacks

        if self.model is None:
            raise UsageError("train: no model built yet; expected a build request first")
        timer = StepTimer()
        self.model.fit(self.train_data, epochs=1, steps_per_epoch=int(steps), verbose=0,
                       shuffle=False, callbacks=[make_callbacks(timer, None, 1)])
        if timer.diverged:
            raise TrainingDiverged(timer.diverged)
        return {"step_ms": timer.step_ms[0]}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "start":
            return self.start(request["options"], int(request["seed"]))
        if op == "build":
            return self.build(str(request["variant"]))
        if op == "train":
            return self.train(int(request["steps"]))
        raise UsageError(f"unknown request {op!r}; expected start, build, train or quit")


def _answer(trainer: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One request's answer; every failure becomes one line of a known kind."""
    import traceback

    try:
        return {"ok": True, **trainer.handle(request)}
    except NoTensorFlow as exc:
        return {"ok": False, "kind": "no_tensorflow", "error": str(exc)}
    except UsageError as exc:
        return {"ok": False, "kind": "usage", "error": str(exc)}
    except Exception as exc:  # the coordinator turns it into its one line
        traceback.print_exc()  # into the worker's log, for the record
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return {"ok": False, "kind": "crash", "error": f"{type(exc).__name__}: {first}"}


def serve(trainer: Any) -> int:
    """Speak the protocol on a private copy of stdout until quit or end of input."""
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    send({"event": "hello", "protocol": PROTOCOL, "pid": os.getpid(),
          "python": sys.executable, "catsdogs": str(Path(__file__).resolve().parents[1])})
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            request = {"op": line.strip()[:40]}
        if not isinstance(request, dict) or request.get("op") == "quit":
            break
        send(_answer(trainer, request))
    return 0


# ---------------------------------------------------------------- the coordinator's end


class WorkerProcess:
    """One side's worker, started in its environment; each method is one request.

    Its stderr (TensorFlow's start-up lines, warnings) goes to a temporary file, not the
    terminal, where the live progress is; the last line of it explains a worker that
    died, and `log_tail` goes into the record."""

    def __init__(self, env: Environment, role: str,
                 parent_environ: dict[str, str] | None = None) -> None:
        self.env, self.role = env, role
        self.where = f"{role} {env.shown}"
        self._log = tempfile.TemporaryFile()
        root = project_root()
        try:  # cwd = the checkout: `-m` puts it first on sys.path, before any other copy
            self._process = subprocess.Popen(
                [env.python, "-m", "catsdogs.training.ab_worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, cwd=root,
                env=child_environ(env, parent_environ, root))
        except OSError as exc:
            raise UsageError(f"{self.where}: cannot run {quoted(env.python)} "
                             f"({exc.strerror or exc}); expected a Python interpreter") from None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._receive(HELLO_TIMEOUT_S, "start")
        if self.hello.get("protocol") != PROTOCOL:
            self.close()
            raise UsageError(f"{self.where}: its worker speaks protocol "
                             f"{self.hello.get('protocol')!r}; expected {PROTOCOL} (the same "
                             "catsdogs on both sides)")

    def _read(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines the worker wrote to stderr."""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def _died(self, what: str) -> UsageError:
        try:
            code = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        last = (self.log_tail(1) or ["no message"])[0][:240]
        expected = ("an interpreter with TensorFlow that can import this catsdogs"
                    if what == "start" else "it to keep running (out of memory? killed?); "
                    "nothing was recorded")
        return UsageError(f"{self.where}: its worker ended (exit status {code}) during "
                          f"{what}: {last}; expected {expected}")

    def _receive(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise UsageError(f"{self.where}: no answer to {what} within {timeout:.0f} s; "
                             "expected a working worker") from None
        if line is None:
            raise self._died(what)
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.close()
            said = line.decode("utf-8", "replace").strip()[:80]
            raise UsageError(f"{self.where}: its worker answered {said!r} to {what}; "
                             "expected catsdogs' worker protocol (JSON lines)")
        return message

    def request(self, op: str, timeout: float, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; a refusal or failure is one line."""
        try:
            self._process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
            self._process.stdin.flush()
        except (OSError, ValueError):  # a worker that ended, or one closed after a refusal
            raise self._died(op) from None
        answer = self._receive(timeout, op)
        if not answer.get("ok"):
            raise UsageError(f"{self.where}: {answer.get('error', 'failed')}")
        return answer

    def start(self, options: dict[str, Any], seed: int) -> dict[str, Any]:
        return self.request("start", START_TIMEOUT_S, options=options, seed=seed)

    def build(self, variant: str) -> dict[str, Any]:
        return self.request("build", BUILD_TIMEOUT_S, variant=variant)

    def train(self, steps: int, timeout: float) -> list[float]:
        return [float(ms) for ms in self.request("train", timeout, steps=steps)["step_ms"]]

    def close(self) -> None:
        """Ask the worker to quit; stop it if it does not within a few seconds."""
        if self._process.poll() is None:
            try:
                self._process.stdin.write(b'{"op": "quit"}\n')
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):  # ValueError: closed
                self._process.kill()
                self._process.wait()


def main(make_trainer: Callable[[], Any] = Trainer) -> int:
    """`python -m catsdogs.training.ab_worker`: serve until told to quit."""
    return serve(make_trainer())


if __name__ == "__main__":
    sys.exit(main())

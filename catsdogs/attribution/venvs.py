"""Cached virtual environments for `catsdogs bisect`: one per combination of pins.

Each is built the way tox.ini builds a release env (`constrain_package_deps`,
`use_frozen_constraints`): first `pip install` of the pins alone, then the project's own
dependencies (pyproject.toml) installed under the constraints of `pip freeze` of that
first step, so nothing the project needs can upgrade a pinned package. What got
installed (`pip freeze`) is recorded in the environment's `catsdogs-venv.json`, written
last: a folder without it is an interrupted build and is made again. A combination that
does not install, installs other versions than pinned, or does not import TensorFlow and
Keras is skipped with the reason. The probe runs there as `python -m catsdogs probe`,
with this checkout on PYTHONPATH, and its file is cached beside the environment per
probe options and catsdogs source.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from catsdogs.attribution.bisect import Outcome, pins_text
from catsdogs.attribution.fileformat import read_probe
from catsdogs.errors import UsageError, quoted
from catsdogs.fsutil import atomic_write, file_lock
from catsdogs.options import BenchOptions
from catsdogs.resultset.outputs import check_output_path

MARKER = "catsdogs-venv.json"
REPO = Path(__file__).resolve().parents[2]
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")
INSTALL_TIMEOUT_S = 3600
PROBE_TIMEOUT_S = 3600
#: TensorFlow's own C++ start-up lines (absl format): never the reason a step failed.
TF_LOG_LINE = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |WARNING: All log messages)")


def default_root(environ=None) -> Path:
    """Where environments are cached: $CATSDOGS_VENVS, else ~/.cache/catsdogs/venvs."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("CATSDOGS_VENVS") or Path.home() / ".cache/catsdogs/venvs")


def python_version(python: str) -> str:
    """MAJOR.MINOR of an interpreter, or one line saying it cannot be run."""
    found = shutil.which(python) or (python if Path(python).is_file() else None)
    if found is None:
        raise UsageError(f"--python {quoted(python)}: not found; expected a Python interpreter "
                         "(e.g. python3.11, the one tox.ini's release envs use)")
    try:
        done = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"--python {quoted(python)}: cannot run it ({exc}); expected a Python "
                         "interpreter") from None
    text = done.stdout.strip()
    if done.returncode != 0 or not re.fullmatch(r"\d+\.\d+", text):
        said = (done.stderr.strip().splitlines() or ["no output"])[0][:200]
        raise UsageError(f"--python {quoted(python)}: does not run ({said}); expected a Python "
                         "interpreter")
    return text


def check_root(root: Path) -> Path:
    """The cache folder, through the check every output passes (check_output_path): one
    line, before any build, if it cannot be made or written, or if it lies inside a
    result set or among the sets of `runs/` (environments of gigabytes, and their
    probes, must never land in a recorded set)."""
    return check_output_path("--venvs", root, folder=True)


def project_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The project's runtime dependencies, as pyproject.toml lists them, with its
    `tensorflow` extra: a probe runs on TensorFlow, which is no longer a base dependency
    (the jax and torch installs leave it out), so an environment without a TensorFlow pin
    still gets one."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise UsageError("bisect: reading pyproject.toml needs Python 3.11 or newer (tomllib); "
                         f"expected it, got Python {sys.version.split()[0]}") from None

    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["optional-dependencies"]["tensorflow"], *project["dependencies"]]


def source_digest(package: Path = REPO / "catsdogs") -> str:
    """A digest of catsdogs' own source: a cached probe is reused only by the same code."""
    combined = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".sha256"):
            combined.update(str(path.relative_to(package)).encode())
            combined.update(hashlib.sha256(path.read_bytes()).digest())
    return combined.hexdigest()


def probe_arguments(options: BenchOptions, steps: int) -> list[str]:
    """The `catsdogs probe` options every environment runs with, spelled out (the
    children get no CATSDOGS_* variables, so nothing differs between them)."""
    arguments = ["--variants", ",".join(options.variants),
                 "--seeds", ",".join(str(seed) for seed in options.seeds),
                 "--batch-size", str(options.batch_size), "--steps", str(steps),
                 "--weights", options.weights]
    if options.limit:
        arguments += ["--limit", str(options.limit)]
    if options.synthetic:
        arguments.append("--synthetic")
    elif options.data_dir:
        arguments += ["--data-dir", str(Path(options.data_dir).resolve())]
    if options.deterministic:
        arguments.append("--deterministic")
    return arguments


def _last_line(text: str) -> str:
    """The line of a failed command's output that says why (pip's ERROR, Python's
    exception), not TensorFlow's start-up chatter."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not TF_LOG_LINE.match(line.strip())]
    errors = [line for line in lines if line.startswith("ERROR:")]
    chosen = (errors or lines or ["no output"])[0 if errors else -1]
    return chosen if len(chosen) <= 300 else chosen[:300] + "..."


def _child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would leak into a child environment:
    CATSDOGS_* options, PYTHONPATH, the active virtual environment."""
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("CATSDOGS_") and key not in ("PYTHONPATH", "VIRTUAL_ENV",
                                                                   "PYTHONHOME")}
    environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    environ.update(extra or {})
    return environ


class VenvMaker:
    """The real EnvMaker: venvs under `root`, made from `python`, each probed with
    `probe_args`; progress lines go to `say`."""

    def __init__(self, root: Path, python: str, probe_args: list[str],
                 say: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.python = python
        self.version = python_version(python)
        self.probe_args = list(probe_args)
        self.say = say or (lambda line: None)
        self.key = hashlib.sha256(json.dumps([self.probe_args, source_digest()]).encode()
                                  ).hexdigest()[:16]

    def folder(self, pins: dict[str, str]) -> Path:
        """`py3.11-keras-3.7.0-tensorflow-2.18.1`: the python and the sorted pins."""
        parts = [f"{name}-{version}" for name, version in sorted(pins.items())]
        return self.root / "-".join([f"py{self.version}", *parts])

    def versions(self, package: str) -> list[str]:
        """Every release of `package` on the index with files for this Python (`pip index
        versions`, pre-releases included; the search filters them)."""
        command = [sys.executable, *PIP, "index", "versions", package, "--pre",
                   "--python-version", self.version]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        for line in done.stdout.splitlines():
            if line.startswith("Available versions:"):
                return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
        raise UsageError(f"bisect: cannot list the releases of {package} "
                         f"({_last_line(done.stderr)}); expected a package on pip's index")

    def _run(self, command: list, what: str, timeout: int = INSTALL_TIMEOUT_S,
             extra: dict[str, str] | None = None) -> str:
        """Run one build or probe command; a failure raises _Skip with its reason."""
        try:
            done = subprocess.run([str(part) for part in command], capture_output=True,
                                  text=True, timeout=timeout, env=_child_environment(extra))
        except subprocess.TimeoutExpired:
            raise _Skip(f"{what}: no result after {timeout} s") from None
        if done.returncode != 0:
            raise _Skip(f"{what}: {_last_line(done.stderr + done.stdout)}")
        return done.stdout

    def _build(self, pins: dict[str, str], folder: Path) -> dict:
        """Make the environment (see the module's docstring); the record it writes."""
        self.say(f"bisect: building {folder.name} (pip install "
                 f"{' '.join(self._specs(pins))})")
        self._run([self.python, "-m", "venv", folder], "could not create the environment")
        python = folder / "bin" / "python"
        self._run([python, *PIP, "install", *self._specs(pins)], "does not install")
        constraints = folder / "constraints.txt"
        constraints.write_text(self._run([python, *PIP, "freeze"], "pip freeze failed"))
        self._run([python, *PIP, "install", "-c", constraints, *project_dependencies()],
                  "the project's dependencies do not install with these pins")
        installed = self._run([python, *PIP, "freeze"], "pip freeze failed").splitlines()
        found = dict(line.split("==", 1) for line in installed if "==" in line)
        found = {re.sub(r"[-_.]+", "-", name).lower(): value for name, value in found.items()}
        wrong = [f"{name} {found.get(name, 'missing')} instead of {version}"
                 for name, version in pins.items() if found.get(name) != version]
        if wrong:
            raise _Skip("pip installed " + ", ".join(wrong))
        self._run([python, "-c", "import tensorflow, keras"], "does not import")
        return {"pins": pins, "python": self.version, "base_python": self.python,
                "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "installed": installed}

    @staticmethod
    def _specs(pins: dict[str, str]) -> list[str]:
        return [f"{name}=={version}" for name, version in pins.items()]

    def ensure(self, pins: dict[str, str]) -> Path:
        """The environment's python, built if it is not cached; _Skip if it cannot be."""
        folder = self.folder(pins)
        with file_lock(self.root / f".{folder.name}.lock"):
            if (folder / MARKER).is_file():
                return folder / "bin" / "python"
            if folder.exists():
                shutil.rmtree(folder)  # an interrupted build
            try:
                record = self._build(pins, folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)  # a failed TF install is GBs
                raise
            atomic_write(folder / MARKER, json.dumps(record, indent=1) + "\n")
        return folder / "bin" / "python"

    def probe(self, pins: dict[str, str]) -> Outcome:
        """The probe of these pins (cached per options and source), or why there is none."""
        try:
            python = self.ensure(pins)
        except _Skip as exc:
            return Outcome(None, str(exc))
        cached = python.parent.parent / "probes" / f"{self.key}.npz"
        if not cached.is_file():
            cached.parent.mkdir(exist_ok=True)
            partial = cached.with_name(f".{self.key}.{os.getpid()}.npz")
            partial.unlink(missing_ok=True)
            self.say(f"bisect: probing {pins_text(pins)}")
            try:
                self._run([python, "-m", "catsdogs", "probe", *self.probe_args, "--out",
                           partial], "the probe failed", PROBE_TIMEOUT_S,
                          {"PYTHONPATH": str(REPO)})
            except _Skip as exc:
                partial.unlink(missing_ok=True)
                return Outcome(None, str(exc))
            os.replace(partial, cached)
        return Outcome(read_probe(cached, shown=f"{pins_text(pins)} ({quoted(cached)})"))


class _Skip(Exception):
    """A combination that cannot be built or probed; its message is the reason."""

"""Which Python runs one side of a comparison: an interpreter's path, or a tox env of this project.

`catsdogs ab BASE CANDIDATE` (and anything else that runs the same code under two
environments) names each side with a spec:

    PATH        a Python interpreter (or the folder of a virtual environment: its
                bin/python) that has TensorFlow and catsdogs' dependencies installed;
    tox:NAME    the interpreter of this project's tox env NAME, with the variables tox
                sets for it (its set_env: CATSDOGS_EXPECT_TF, TF_USE_LEGACY_KERAS, ...),
                read with `tox config`, so running its interpreter directly behaves as
                `tox -e NAME` would. The env must exist: `tox -e NAME --notest` makes it.

Every side runs THIS checkout's catsdogs: its folder goes first on the side's PYTHONPATH
(`child_environ`), so what differs between the sides is the environment (TensorFlow,
Keras, their dependencies, the variables), never the benchmark code. Nothing here imports
TensorFlow; a bad spec is one UsageError line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from catsdogs.errors import UsageError

TOX_PREFIX = "tox:"
#: Variables of a tox env's set_env that are not carried over: tox draws PYTHONHASHSEED at
#: random on every call, and the two sides should hash alike.
TOX_SKIPPED = frozenset({"PYTHONHASHSEED"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TOX_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Environment:
    """One side, resolved: the interpreter and the variables set for it on top of the
    caller's environment (a tox env's set_env, then the user's K=V, which win)."""

    spec: str  # as the user gave it
    python: str  # absolute path of the interpreter
    variables: dict[str, str]
    tox_env: str | None = None  # NAME for tox:NAME

    @property
    def label(self) -> str:
        """A short file-name-safe name: `tox-tf218`, or the interpreter's environment
        folder (`venv` for .venv/bin/python), plus the variables the user set."""
        if self.tox_env:
            name = f"tox-{self.tox_env}"
        else:
            path = Path(self.python)
            name = path.parent.parent.name if path.parent.name == "bin" else path.name
        return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-.") or "python"


def parse_assignments(items: Sequence[str] | None, *, option: str) -> dict[str, str]:
    """`K=V` strings (one per `--base-env`/`--candidate-env`) -> {K: V}; V may be empty
    or hold `=`. A bad item is one line naming the option and quoting it."""
    found: dict[str, str] = {}
    for item in items or ():
        name, equals, value = str(item).partition("=")
        if not equals or not _VARIABLE.fullmatch(name):
            raise UsageError(f"{option}: expected NAME=VALUE with a variable name (letters, "
                             f"digits, _), got {item!r}")
        found[name] = value
    return found


def project_root(start: Path | None = None) -> Path | None:
    """The checkout this catsdogs runs from (the folder holding catsdogs/ and tox.ini), or
    None for an installed copy (site-packages), whose parent is no project."""
    root = (start or Path(__file__).resolve().parent).parent
    return root if (root / "tox.ini").is_file() and (root / "catsdogs").is_dir() else None


def resolve(spec: str, *, role: str, variables: Mapping[str, str] | None = None,
            root: Path | None = None) -> Environment:
    """The Environment of a side spec. `role` names the argument in messages (BASE,
    CANDIDATE). Refused, one line: an empty spec, a missing or non-executable
    interpreter, `tox:` with a bad name, an env tox does not define or has not made."""
    text = str(spec).strip()
    user = dict(variables or {})
    if not text:
        raise UsageError(f"{role}: expected the path of a Python interpreter or tox:NAME, "
                         f"got {spec!r}")
    if text.startswith(TOX_PREFIX):
        name = text[len(TOX_PREFIX):]
        python, tox_vars = tox_environment(name, role=role, root=root)
        return Environment(text, python, {**tox_vars, **user}, name)
    return Environment(text, interpreter(text, role=role), user)


def interpreter(text: str, *, role: str) -> str:
    """The absolute path of the interpreter `text` names (a venv folder: its bin/python),
    checked to be an executable file. Not resolved through symbolic links: a venv's
    python is a link to the base interpreter, and only its own path finds the venv."""
    path = Path(text).expanduser()
    if path.is_dir() and (path / "bin" / "python").is_file():
        path = path / "bin" / "python"
    if not path.exists():
        problem = "no such file"
    elif not path.is_file():
        problem = "not a file (a folder without bin/python)"
    elif not os.access(path, os.X_OK):
        problem = "not executable"
    else:
        return str(path.absolute())
    raise UsageError(f"{role} {text!r}: {problem}; expected the path of a Python interpreter "
                     f"with TensorFlow installed, or tox:NAME")


def _tox_command() -> list[str]:
    """How to call tox: this interpreter's module if it has one, else tox on PATH."""
    import importlib.util

    if importlib.util.find_spec("tox") is not None:
        return [sys.executable, "-m", "tox"]
    found = shutil.which("tox")
    return [found] if found else []


def parse_tox_config(text: str) -> tuple[str, dict[str, str]]:
    """(env_dir, set_env) from `tox config -e NAME -k env_dir set_env` output: `key =
    value` lines, set_env's entries indented below it as `K=V`."""
    env_dir, variables, in_set_env = "", {}, False
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and in_set_env:
            name, _, value = line.strip().partition("=")
            if name and name not in TOX_SKIPPED:
                variables[name] = value
            continue
        key, _, value = line.partition("=")
        in_set_env = key.strip() == "set_env"
        if key.strip() == "env_dir":
            env_dir = value.strip()
    return env_dir, variables


def tox_environment(name: str, *, role: str, root: Path | None = None
                    ) -> tuple[str, dict[str, str]]:
    """(interpreter, variables) of this project's tox env `name`, as `tox config` states
    them; the interpreter must exist (the env made with `tox -e NAME --notest`)."""
    where = f"{role} {TOX_PREFIX}{name}"
    if not _NAME.fullmatch(name):
        raise UsageError(f"{where}: expected a tox env name like tf221 (letters, digits, "
                         f"., _, -), got {name!r}")
    root = root or project_root()
    if root is None or not (root / "tox.ini").is_file():
        raise UsageError(f"{where}: no tox.ini beside this catsdogs ({Path(__file__).parent}); "
                         "expected a checkout of the project, or give the interpreter's path")
    command = _tox_command()
    if not command:
        raise UsageError(f"{where}: tox is not installed here; expected tox (pip install "
                         f"tox), or give the interpreter's path ({root}/.tox/{name}/bin/python)")
    try:
        done = subprocess.run([*command, "-c", str(root / "tox.ini"), "config", "-e", name,
                               "-k", "env_dir", "set_env"], capture_output=True, text=True,
                              timeout=TOX_TIMEOUT_S, cwd=root)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"{where}: could not ask tox ({exc}); expected a working tox") \
            from None
    env_dir, variables = parse_tox_config(done.stdout)
    if done.returncode != 0 or not env_dir:
        said = " ".join((done.stdout + done.stderr).replace("ROOT: HandledError| ", "")
                        .split())[-160:]
        raise UsageError(f"{where}: {root / 'tox.ini'} defines no env {name!r} (tox: {said}); "
                         "expected one of its envs, e.g. tf221")
    python = Path(env_dir) / "bin" / "python"
    if not python.is_file():
        raise UsageError(f"{where}: the env is not made yet ({python} is missing); "
                         f"expected it made first: tox -e {name} --notest")
    variables["PATH"] = f"{Path(env_dir) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(python), variables


def child_environ(env: Environment, parent: Mapping[str, str] | None = None,
                  root: Path | None = None) -> dict[str, str]:
    """The complete environment of a side's process: the caller's, the side's variables
    over it, and this checkout first on PYTHONPATH (both sides run the same catsdogs).
    Set in the process's environment from its start, the variables are in place before
    the worker imports TensorFlow (oneDNN, thread counts and XLA flags are read then)."""
    environ = {**(os.environ if parent is None else parent), **env.variables}
    root = root or project_root()
    if root is not None:
        rest = environ.get("PYTHONPATH", "")
        environ["PYTHONPATH"] = str(root) + (os.pathsep + rest if rest else "")
    return environ

"""Every tox release env runs the release it is named for, or refuses to run.

Two guards: (1) pip resolves each env's install, done the way tox does it, to the
TensorFlow (and Keras) the env names (network: PyPI metadata only, nothing installed;
`pytest -m network`); (2) a run whose imported TensorFlow is not CATSDOGS_EXPECT_TF
stops with one line and exit 2 before anything is written.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from catsdogs.errors import UsageError
from catsdogs.training import provenance

REPO = Path(__file__).resolve().parents[1]
RELEASE_ENVS = ("tf216", "tf217", "tf218", "tf219", "tf220", "tf221", "keras2")
#: The Keras-backend envs: the bench on jax or torch, with no TensorFlow installed.
BACKEND_ENVS = ("jax", "torch")


# ---------------------------------------------------------------- the run-time guard


@pytest.mark.parametrize("expected, imported, ok", [
    ("2.16", "2.16.2", True), ("2.16", "2.16.0rc1", True), ("2.16.2", "2.16.2", True),
    ("2.16", "2.21.0", False), ("2.1", "2.16.2", False), ("2.16.1", "2.16.2", False),
])
def test_release_mismatch(expected, imported, ok):
    problem = provenance.release_mismatch(expected, imported)
    assert (problem is None) == ok, problem
    if not ok:
        assert imported in problem and expected in problem and "\n" not in problem


@pytest.mark.parametrize("bad", ["216", "2.16.x", "tf2.16"])
def test_expect_tf_of_an_unknown_form_is_refused(bad):
    with pytest.raises(UsageError, match=re.escape(repr(bad))):
        provenance.check_expected_tf({"CATSDOGS_EXPECT_TF": bad})


def test_expect_tf_unset_or_matching_passes():
    import tensorflow as tf

    provenance.check_expected_tf({})
    release = ".".join(tf.__version__.split(".")[:2])
    provenance.check_expected_tf({"CATSDOGS_EXPECT_TF": release})


def test_run_in_an_env_holding_another_release_refuses_before_writing(tmp_path, monkeypatch,
                                                                        capsys):
    """`catsdogs run` where the env expects 2.16 but imports this venv's TensorFlow:
    exit 2, one line naming both releases, no result set, no synthetic data made."""
    import tensorflow as tf

    from catsdogs.cli import main

    other = "2.16" if not tf.__version__.startswith("2.16.") else "2.21"
    monkeypatch.setenv("CATSDOGS_EXPECT_TF", other)
    results = tmp_path / "results"
    code = main(["run", "--synthetic", "--epochs", "1", "--variants", "model1", "--seeds", "0",
                 "--results-dir", str(results)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and other in err[0] and tf.__version__ in err[0], err
    assert not results.exists()


def test_tox_preflight_says_one_line_and_exits_2_on_another_release(monkeypatch, capsys):
    """`python -m catsdogs.training.provenance`, which every release env runs first."""
    import tensorflow as tf

    other = "2.16" if not tf.__version__.startswith("2.16.") else "2.21"
    monkeypatch.setenv("CATSDOGS_EXPECT_TF", other)
    assert provenance.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("catsdogs: error: CATSDOGS_EXPECT_TF="), err
    monkeypatch.setenv("CATSDOGS_EXPECT_TF", ".".join(tf.__version__.split(".")[:2]))
    assert provenance.main() == 0
    assert tf.__version__ in capsys.readouterr().out


# ---------------------------------------------------------------- install resolution


def _tox_config(envs: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """tox's own reading of tox.ini (`tox config`), so the test sees the deps, settings
    and set_env tox will use, factor conditions and substitutions applied."""
    keys = ["deps", "constrain_package_deps", "use_frozen_constraints", "base_python",
            "extras", "set_env"]
    out = subprocess.run([sys.executable, "-m", "tox", "config", "-e", ",".join(envs),
                          "-k", *keys], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"tox config failed (is tox installed?)\n{out.stderr[-2000:]}"
    config: dict[str, dict[str, list[str]]] = {}
    env = key = None
    for line in out.stdout.splitlines():
        if match := re.fullmatch(r"\[testenv:(\S+)\]", line.strip()):
            env = match.group(1)
            config[env] = {}
        elif match := re.fullmatch(r"(\w+) =(.*)", line):
            key = match.group(1)
            config[env][key] = [match.group(2).strip()] if match.group(2).strip() else []
        elif line.startswith("  ") and line.strip() and env and key:
            config[env][key].append(line.strip())
    return config


def _resolve(requirements: list[str], python: str, constraints: Path | None) -> dict[str, str]:
    """What `pip install` would install into an empty env, without installing: name ->
    version, from pip's installation report."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--report", "-", "--quiet",
               "--ignore-installed", "--only-binary=:all:", "--python-version", python,
               *requirements]
    if constraints is not None:
        command += ["-c", str(constraints)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"pip could not resolve {requirements}:\n{out.stderr[-3000:]}"
    report = json.loads(out.stdout)
    return {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in report["install"]}


def _package_requirements(extras: list[str]) -> list[str]:
    """The project's own dependencies and those of the env's extras, from pyproject; an
    extra that names the project's own extras (`test` = `catsdogs-bench[tools,tensorflow]`)
    is followed, as pip follows it."""
    import tomllib  # Python 3.11+; this test runs in CI on the bench envs' 3.11
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted, todo, seen = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in project["optional-dependencies"][extra]:
            requirement = Requirement(line)
            if requirement.name == project["name"]:
                todo += sorted(requirement.extras)
            else:
                wanted.append(line)
    return wanted


def _as_tox_installs(env: dict[str, list[str]], workdir: Path) -> dict[str, str]:
    """The versions tox would end with: `deps` in one pip call, then the package's
    dependencies in a second, constrained the way the env's settings say (pip freeze
    of the first call, the deps themselves, or nothing)."""
    python = re.fullmatch(r"python(\d+\.\d+)", env["base_python"][0]).group(1)
    first = _resolve(env["deps"], python, None)
    constraints = None
    if env["constrain_package_deps"] == ["True"]:
        constraints = workdir / "constraints.txt"
        pins = ([f"{name}=={version}" for name, version in first.items()]
                if env["use_frozen_constraints"] == ["True"] else env["deps"])
        constraints.write_text("\n".join(pins) + "\n")
    second = _resolve(_package_requirements(env["extras"]), python, constraints)
    return {**first, **second}


def _deps_problems(name: str, deps: list[str], versions: dict[str, str]) -> list[str]:
    """Every dep of the env within its range in what pip resolved."""
    from packaging.requirements import Requirement

    problems = []
    for line in deps:
        req = Requirement(line)
        got = versions.get(req.name.lower())
        if got is None or not req.specifier.contains(got, prereleases=True):
            problems.append(f"{name}: {req} resolved to {got}")
    return problems


@pytest.mark.network
def test_every_release_env_resolves_to_the_release_it_names(tmp_path):
    """For each env in the matrix: the TensorFlow pip would install is the env's
    CATSDOGS_EXPECT_TF (and the release in the env's name), and every dep's range holds
    (Keras within the env's bounds). The envs resolve in parallel: about a minute."""
    config = _tox_config(RELEASE_ENVS)
    for name in RELEASE_ENVS:
        (tmp_path / name).mkdir()
    with ThreadPoolExecutor(max_workers=4) as pool:
        installs = dict(zip(RELEASE_ENVS, pool.map(
            lambda name: _as_tox_installs(config[name], tmp_path / name), RELEASE_ENVS)))
    problems = []
    for name, versions in installs.items():
        set_env = dict(line.split("=", 1) for line in config[name]["set_env"])
        expected = set_env.get("CATSDOGS_EXPECT_TF", "")
        named = re.fullmatch(r"tf(\d)(\d+)", name)
        if named and expected != f"{named.group(1)}.{named.group(2)}":
            problems.append(f"{name}: CATSDOGS_EXPECT_TF={expected!r} does not match its name")
        mismatch = provenance.release_mismatch(expected, versions.get("tensorflow", "none"))
        if mismatch:
            problems.append(f"{name}: {mismatch}")
        problems += _deps_problems(name, config[name]["deps"], versions)
        print(f"{name}: tensorflow {versions.get('tensorflow')}, keras {versions.get('keras')}"
              f", tf-keras {versions.get('tf-keras', '-')}, numpy {versions.get('numpy')}")
    assert not problems, "\n".join(problems)


@pytest.mark.network
def test_the_backend_envs_install_their_backend_and_no_tensorflow(tmp_path):
    """tox -e jax / -e torch: the backend pinned in deps, Keras in tf221's range, and no
    TensorFlow anywhere in the resolution (the point of those envs)."""
    config = _tox_config(BACKEND_ENVS)
    problems = []
    for name in BACKEND_ENVS:
        (tmp_path / name).mkdir()
        versions = _as_tox_installs(config[name], tmp_path / name)
        set_env = dict(line.split("=", 1) for line in config[name]["set_env"])
        if set_env.get("CATSDOGS_BACKEND") != name:
            problems.append(f"{name}: CATSDOGS_BACKEND={set_env.get('CATSDOGS_BACKEND')!r}")
        for unwanted in ("tensorflow", "tensorflow-cpu", "tf-keras"):
            if unwanted in versions:
                problems.append(f"{name}: installs {unwanted} {versions[unwanted]}")
        problems += _deps_problems(name, config[name]["deps"], versions)
        print(f"{name}: {name} {versions.get(name)}, keras {versions.get('keras')}, "
              f"numpy {versions.get('numpy')}")
    assert not problems, "\n".join(problems)


def test_the_default_extras_still_install_tensorflow():
    """`pip install -e '.[test]'` (the README's command) must keep installing TensorFlow."""
    wanted = _package_requirements(["test"])
    assert any(line.startswith("tensorflow") for line in wanted), wanted
    assert not any(line.startswith("tensorflow") for line in _package_requirements(
        ["jax", "tools"]) + _package_requirements(["torch", "tools"]))

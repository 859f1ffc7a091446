"""catsdogs.envs: side specs (an interpreter's path, or tox:NAME) and each side's environment.

tox:NAME is resolved by the real `tox config` against a small tox.ini in a temporary
project, whose env folder holds a link to this interpreter (nothing is installed)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from catsdogs import envs
from catsdogs.errors import UsageError

TOX_INI = """\
[tox]
env_list = made
[testenv]
package = skip
setenv =
    TF_CPP_MIN_LOG_LEVEL = 2
    made: CATSDOGS_EXPECT_TF = 2.18
[testenv:unmade]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a tox.ini, its env `made` made (bin/python links to this
    interpreter), and `unmade` defined but never made."""
    (tmp_path / "tox.ini").write_text(TOX_INI)
    (tmp_path / "catsdogs").mkdir()
    python = tmp_path / ".tox" / "made" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    return tmp_path


def test_assignments_keep_everything_after_the_first_equals_sign():
    assert envs.parse_assignments(["A=1", "B=", "C=x=y"], option="--base-env") == {
        "A": "1", "B": "", "C": "x=y"}


@pytest.mark.parametrize("item", ["NOEQUALS", "=1", "1A=2", "A B=1"])
def test_a_bad_assignment_is_one_line_naming_the_option(item):
    with pytest.raises(UsageError, match=rf"^--candidate-env: expected NAME=VALUE .*, got "
                       rf"'{item}'$"):
        envs.parse_assignments([item], option="--candidate-env")


def test_an_interpreter_path_and_a_venv_folder_name_the_same_python(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    by_folder = envs.resolve(str(venv), role="BASE", variables={"K": "V"})
    by_path = envs.resolve(str(venv / "bin" / "python"), role="BASE")
    assert by_folder.python == by_path.python == str(venv / "bin" / "python")
    assert by_folder.variables == {"K": "V"} and by_folder.label == "venv"


@pytest.mark.parametrize("spec,problem", [("missing", "no such file"),
                                          ("folder", "not a file (a folder without bin/python)"),
                                          ("not executable", "not executable")])
def test_a_bad_interpreter_is_one_line(tmp_path, spec, problem):
    (tmp_path / "folder").mkdir()
    (tmp_path / "not executable").write_text("#!/bin/sh\n")
    with pytest.raises(UsageError, match=rf"^CANDIDATE '.*{spec}': {re.escape(problem)}; "
                       r"expected the "
                       r"path of a Python interpreter with TensorFlow installed, or tox:NAME$"):
        envs.resolve(str(tmp_path / spec), role="CANDIDATE")


def test_tox_env_gives_its_interpreter_and_set_env_without_the_random_hash_seed(project):
    pytest.importorskip("tox")
    side = envs.resolve("tox:made", role="BASE", variables={"TF_CPP_MIN_LOG_LEVEL": "0"},
                        root=project)
    assert side.python == str(project / ".tox" / "made" / "bin" / "python")
    assert side.variables["CATSDOGS_EXPECT_TF"] == "2.18"
    assert side.variables["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the user's K=V wins
    assert "PYTHONHASHSEED" not in side.variables
    assert side.variables["PATH"].startswith(str(project / ".tox" / "made" / "bin"))
    assert side.tox_env == "made" and side.label == "tox-made"


def test_a_tox_env_not_made_yet_says_how_to_make_it(project):
    pytest.importorskip("tox")
    with pytest.raises(UsageError, match=r"^CANDIDATE tox:unmade: the env is not made yet "
                       r"\(.*\.tox/unmade/bin/python is missing\); expected it made first: "
                       r"tox -e unmade --notest$"):
        envs.resolve("tox:unmade", role="CANDIDATE", root=project)


def test_a_tox_env_the_project_does_not_define_is_one_line(project):
    pytest.importorskip("tox")
    with pytest.raises(UsageError, match=r"^BASE tox:tf999: .*tox.ini defines no env 'tf999' "
                       r"\(tox: .*not found.*\); expected one of its envs"):
        envs.resolve("tox:tf999", role="BASE", root=project)


@pytest.mark.parametrize("spec", ["tox:", "tox:../x", "tox:a b"])
def test_a_bad_tox_name_is_refused_before_tox_runs(spec):
    with pytest.raises(UsageError, match=r"^BASE tox:.*: expected a tox env name like tf221"):
        envs.resolve(spec, role="BASE")


def test_tox_config_output_is_read_as_env_dir_and_set_env():
    text = ("[testenv:tf218]\nenv_dir = /p/.tox/tf218\nset_env =\n  A=1\n  PYTHONHASHSEED=7\n"
            "  B=x=y\n")
    assert envs.parse_tox_config(text) == ("/p/.tox/tf218", {"A": "1", "B": "x=y"})


def test_a_side_runs_this_checkout_first_on_its_path_with_its_variables(tmp_path):
    side = envs.Environment("x", sys.executable, {"TF_NUM_INTRAOP_THREADS": "1"})
    environ = envs.child_environ(side, {"PYTHONPATH": "/elsewhere", "HOME": "/h"},
                                 root=tmp_path)
    assert environ["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/elsewhere"
    assert environ["TF_NUM_INTRAOP_THREADS"] == "1" and environ["HOME"] == "/h"


def test_this_checkout_is_a_project_and_an_installed_copy_is_not(tmp_path):
    assert envs.project_root() == Path(envs.__file__).resolve().parents[1]
    assert envs.project_root(tmp_path / "site-packages" / "catsdogs") is None

"""bisect's search (issue 20), against a deterministic environment maker in this process:
release lists as pip lists them, install rules like TensorFlow's Keras requirements, a
probe (tests/probes.py, compared by the real probe-diff) whose RandomRotation output
changes at a chosen release. The real maker (pip, venvs) is checked for what it can be
checked for without installing TensorFlow; `pytest -m network` asks the index."""

from __future__ import annotations

import math

import pytest
from packaging.version import Version
from probes import fake_probe
from test_bad_inputs import cli, error_line  # noqa: F401 - cli is a fixture

from catsdogs.attribution import venvs
from catsdogs.attribution.bisect import Outcome, bisect, parse_pins, pins_text
from catsdogs.errors import UsageError
from catsdogs.options import resolve

RELEASES = {
    # newest first, as `pip index versions` lists them
    "tensorflow": ["2.22.0rc0", "2.21.0", "2.20.0", "2.19.1", "2.19.0", "2.18.1", "2.18.0"],
    "keras": ["3.15.1", "3.15.0", "3.14.0", "3.13.2", "3.12.0", "3.11.3", "3.10.0",
              "3.10.0rc1", "3.9.2", "3.9.1", "3.9.0", "3.8.0", "3.7.0", "3.6.0"],
}
GOOD = {"tensorflow": "2.18.1", "keras": "3.7.0"}
BAD = {"tensorflow": "2.21.0", "keras": "3.15.1"}

@pytest.fixture
def command(request):
    """`catsdogs ARGS` in this process (test_bad_inputs' `cli` fixture)."""
    return request.getfixturevalue("cli")



def tf_needs_keras(pins):
    """TensorFlow's own floor on Keras (each wheel's METADATA, as tox.ini lists them)."""
    if "tensorflow" not in pins:
        return None
    floors = {"2.21": "3.12.0", "2.20": "3.10.0", "2.19": "3.5.0", "2.18": "3.5.0"}
    floor = floors[".".join(pins["tensorflow"].split(".")[:2])]
    if Version(pins["keras"]) < Version(floor):
        return (f"ERROR: Cannot install tensorflow=={pins['tensorflow']} and "
                f"keras=={pins['keras']} (tensorflow requires keras>={floor})")
    return None


class FakeMaker:
    """Probes by rule: `changes(pins)` says whether RandomRotation's output moved,
    `broken(pins)` returns why a combination does not install (or None)."""

    def __init__(self, changes, broken=tf_needs_keras):
        self.changes, self.broken = changes, broken
        self.probed: list[str] = []

    def versions(self, package):
        return list(RELEASES[package])

    def probe(self, pins):
        self.probed.append(pins_text(pins))
        reason = self.broken(pins)
        if reason:
            return Outcome(None, reason)
        return Outcome(fake_probe(pins_text(pins), packages=pins,
                                  changed_from="1.1" if self.changes(pins) else None))


def keras_at_least(version):
    return lambda pins: Version(pins["keras"]) >= Version(version)


def test_names_the_keras_release_that_changed_the_rotation():
    maker = FakeMaker(keras_at_least("3.9.0"))
    lines = []
    result = bisect(GOOD, BAD, maker, say=lines.append)
    assert result.exit_code == 0, result.line
    assert result.line.startswith("keras 3.8.0 -> 3.9.0: model3 changed at layer 1.1 "
                                  "random_rotation (RandomRotation) (forward output: max abs")
    assert result.line.endswith("; held: tensorflow==2.18.1")
    # TF moved first, could not install with Keras 3.7.0, was skipped with pip's reason
    assert any("tensorflow==2.21.0,keras==3.7.0: skipped (ERROR: Cannot install" in line
               for line in lines)
    between = [v for v in RELEASES["keras"] if "rc" not in v
               and Version("3.7.0") < Version(v) < Version("3.15.1")]
    # the two ends, TF's failed move, Keras' move, then a bisection: log2, not a scan
    assert len(maker.probed) <= 4 + math.ceil(math.log2(len(between) + 1))
    assert len(set(maker.probed)) == len(maker.probed), "a combination probed twice"


def test_a_change_that_needs_both_packages_is_found_with_the_other_held():
    """The rotation moves only with TF >= 2.20 and Keras >= 3.10 together: Keras' own move
    is identical, so it is taken, and TF's releases are searched with Keras held."""
    both = lambda pins: (Version(pins["tensorflow"]) >= Version("2.20.0")  # noqa: E731
                         and Version(pins["keras"]) >= Version("3.10.0"))
    result = bisect(GOOD, BAD, FakeMaker(both))
    assert result.exit_code == 0, result.line
    assert result.line.startswith("tensorflow 2.19.1 -> 2.20.0: model3 changed at layer 1.1")
    assert result.line.endswith("; held: keras==3.15.1")


def test_a_broken_release_in_the_way_means_no_single_version():
    broken = lambda pins: tf_needs_keras(pins) or (  # noqa: E731
        "does not import: ImportError: cannot import name 'ops'"
        if pins["keras"] == "3.8.0" else None)
    result = bisect(GOOD, BAD, FakeMaker(keras_at_least("3.9.0"), broken))
    assert result.exit_code == 1
    assert result.line == (
        "no single version could be named: keras's first change is one of 3.8.0, 3.9.0 "
        "(last identical 3.7.0, first differing 3.9.0; skipped: 3.8.0 (does not import: "
        "ImportError: cannot import name 'ops'); held: tensorflow==2.18.1)")


def test_a_broken_release_out_of_the_way_is_stepped_around():
    maker = FakeMaker(keras_at_least("3.9.0"), lambda pins: tf_needs_keras(pins) or (
        "does not install" if pins["keras"] in ("3.11.3", "3.12.0") else None))
    result = bisect(GOOD, BAD, maker)
    assert result.exit_code == 0 and result.line.startswith("keras 3.8.0 -> 3.9.0:")


def test_when_no_package_can_move_alone_it_says_which_must_move_together():
    def broken(pins):
        if (Version(pins["keras"]) >= Version("3.12.0")
                and Version(pins["tensorflow"]) < Version("2.20.0")):
            return "keras 3.12 needs TensorFlow 2.20 (in this fake)"
        return tf_needs_keras(pins)

    result = bisect(GOOD, BAD, FakeMaker(keras_at_least("3.9.0"), broken))
    assert result.exit_code == 1
    assert result.line.startswith("no single version could be named: from "
                                  "tensorflow==2.18.1,keras==3.7.0 no package moves")
    assert result.line.endswith("the change needs tensorflow, keras to move together")


def test_identical_ends_have_nothing_to_bisect():
    result = bisect(GOOD, BAD, FakeMaker(lambda pins: False))
    assert result.exit_code == 1 and "identical probes" in result.line


def test_an_end_that_cannot_be_probed_is_bad_input():
    maker = FakeMaker(keras_at_least("3.9.0"), lambda pins: "does not install"
                      if pins == GOOD else None)
    with pytest.raises(UsageError, match=r"^--good tensorflow==2.18.1,keras==3.7.0: no probe "
                                         r"\(does not install\); expected"):
        bisect(GOOD, BAD, maker)


@pytest.mark.parametrize("pre, first_bad", [(False, "3.10.0"), (True, "3.10.0rc1")])
def test_pre_releases_only_when_asked(pre, first_bad):
    maker = FakeMaker(keras_at_least("3.10.0rc1"))
    result = bisect({"keras": "3.7.0"}, {"keras": "3.15.1"}, maker, pre=pre)
    assert result.first_bad == first_bad and result.last_good == "3.9.2", result.line


def test_a_search_from_a_newer_good_to_an_older_bad():
    """A fix that a downgrade undoes: good is the newer release, bad the older one."""
    result = bisect({"keras": "3.15.1"}, {"keras": "3.7.0"},
                    FakeMaker(lambda pins: Version(pins["keras"]) < Version("3.9.0")))
    assert (result.last_good, result.first_bad) == ("3.9.0", "3.8.0"), result.line


# ---------------------------------------------------------------- pins and refusals


def test_pins_are_normalised_and_ordered_as_given():
    assert parse_pins(" TensorFlow == 2.18.1 , Keras==3.7.0", "--good") == GOOD
    assert list(parse_pins("keras==3.7.0,tf_keras==2.18.0", "--good")) == ["keras", "tf-keras"]


@pytest.mark.parametrize("argv, fragments", [
    (["--good", "tensorflow>=2.18", "--bad", "tensorflow==2.21.0"],
     ["--good: expected name==version pins like tensorflow==2.18.1,keras==3.7.0, got "
      "'tensorflow>=2.18'"]),
    (["--good", "keras==3.x", "--bad", "keras==3.15.1"],
     ["--good: 'keras==3.x' is not a PEP 440 version"]),
    (["--good", "keras==3.7.0,keras==3.8.0", "--bad", "keras==3.15.1"],
     ["--good: keras is pinned twice"]),
    (["--good", "", "--bad", "keras==3.15.1"], ["--good: expected pins like"]),
    (["--good", "tensorflow==2.18.1,keras==3.7.0", "--bad", "tensorflow==2.21.0"],
     ["--good and --bad pin different packages (only in --good: keras; only in --bad: none)"]),
    (["--good", "keras==3.7.0", "--bad", "keras==3.7"],
     ["--good and --bad pin the same versions (keras==3.7.0)"]),
    (["--good", "keras==3.7.0", "--bad", "keras==3.15.1", "--python", "/nonexistent/python9"],
     ["--python /nonexistent/python9: not found"]),
    (["--good", "keras==3.7.0", "--bad", "keras==3.15.1", "--steps", "0"],
     ["--steps: expected a positive integer, got '0'"]),
    (["--good", "keras==3.7.0", "--bad", "keras==3.15.1", "--variants", "model9"],
     ["unknown variant 'model9'"]),
], ids=["range", "version", "twice", "empty", "packages", "same", "python", "steps",
        "variant"])
def test_bad_bisect_input_is_one_line_exit_2_and_builds_nothing(command, tmp_path, argv,
                                                                fragments):
    venv_root = tmp_path / "venvs"
    error_line(command("bisect", *argv, "--venvs", str(venv_root)), *fragments)
    assert not venv_root.exists()


def test_an_unwritable_cache_is_refused(command, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    error_line(command("bisect", "--good", "keras==3.7.0", "--bad", "keras==3.15.1", "--venvs",
                   str(blocker / "venvs")), f"--venvs {blocker / 'venvs'}: cannot write there")


# ---------------------------------------------------------------- the real maker, no installs


def test_every_environment_probes_with_the_same_spelled_out_options(tmp_path):
    options = resolve({"variants": "model3", "limit": "16", "data_dir": str(tmp_path)},
                      environ={}, defaults={"seeds": "0"})
    assert venvs.probe_arguments(options, 3) == [
        "--variants", "preprocessed_cnn", "--seeds", "0", "--batch-size", "32", "--steps", "3",
        "--weights", "imagenet", "--limit", "16", "--data-dir", str(tmp_path.resolve())]


def test_environment_folders_and_cache_keys(tmp_path, monkeypatch):
    maker = venvs.VenvMaker(tmp_path, "python3", ["--variants", "model1"])
    version = venvs.python_version("python3")
    assert maker.folder(BAD).name == f"py{version}-keras-3.15.1-tensorflow-2.21.0"
    other = venvs.VenvMaker(tmp_path, "python3", ["--variants", "model2"])
    assert maker.key != other.key  # a cached probe is reused only for the same options
    assert venvs.project_dependencies()[0].startswith("tensorflow")
    monkeypatch.setenv("CATSDOGS_VENVS", str(tmp_path / "cache"))
    assert venvs.default_root() == tmp_path / "cache"


def test_the_reason_a_command_failed_is_its_error_line():
    pip = ("Collecting keras==9.9\nERROR: Could not find a version that satisfies the "
           "requirement keras==9.9\nERROR: No matching distribution found for keras==9.9\n")
    assert venvs._last_line(pip).startswith("ERROR: Could not find a version")
    python = ("I0000 00:00:1.0  8988 cpu_feature_guard.cc:227] This TensorFlow binary\n"
              "Traceback (most recent call last):\nImportError: numpy.core.multiarray "
              "failed to import\n")
    assert venvs._last_line(python) == "ImportError: numpy.core.multiarray failed to import"


@pytest.mark.network
def test_releases_come_from_the_index(tmp_path):
    maker = venvs.VenvMaker(tmp_path, "python3", [])
    releases = maker.versions("keras")
    assert {"3.7.0", "3.15.1"} <= set(releases)


@pytest.mark.network
def test_a_combination_that_does_not_install_is_skipped_with_pips_reason(tmp_path):
    outcome = venvs.VenvMaker(tmp_path, "python3", []).probe({"keras": "0.0.0.dev1"})
    assert outcome.probe is None and "does not install" in outcome.reason
    assert not any(tmp_path.iterdir()) or all(p.name.startswith(".") for p in tmp_path.iterdir())

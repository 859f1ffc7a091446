"""One option registry serves the CLI, pytest and the environment, with the same checks."""

from __future__ import annotations

import argparse

import pytest

from catsdogs.errors import UsageError
from catsdogs.options import OPTIONS, add_to_argparse, resolve


def _cli(*argv: str, environ: dict | None = None):
    parser = argparse.ArgumentParser()
    add_to_argparse(parser)
    return resolve(vars(parser.parse_args(list(argv))), environ=environ or {})


def test_defaults_are_the_posts():
    options = _cli()
    assert options.epochs == 20 and options.batch_size == 32 and options.seeds == (0, 1, 2)
    assert options.variants == ("baseline_cnn", "augmented_cnn", "preprocessed_cnn",
                                "transfer_mobilenetv2")
    assert options.weights == "imagenet" and not options.smoke


def test_environment_fills_what_the_command_line_leaves_out():
    options = _cli("--epochs", "3", environ={"CATSDOGS_EPOCHS": "7", "CATSDOGS_SEEDS": "4,5",
                                             "CATSDOGS_SYNTHETIC": "1"})
    assert options.epochs == 3 and options.seeds == (4, 5) and options.synthetic


def test_aliases_and_all_resolve_to_canonical_names_in_registry_order():
    assert _cli("--variants", "model4,model1").variants == ("baseline_cnn",
                                                            "transfer_mobilenetv2")


@pytest.mark.parametrize("argv, message", [
    (("--epochs", "0"), "--epochs: expected a positive integer, got '0'"),
    (("--batch-size", "-3"), "--batch-size: expected a positive integer, got '-3'"),
    (("--seeds", "1,-2"), "--seeds: expected non-negative integers"),
    (("--seeds", "1.5"), "--seeds: expected non-negative integers"),
    (("--seeds", "1,1"), "--seeds: '1,1' names a seed twice; expected each seed once"),
    (("--variants", "model7"), "unknown variant 'model7'"),
    (("--shard", "3/2"), "--shard: expected 1 <= K <= N, got '3/2'"),
    (("--shard", "half"), "--shard: expected K/N"),
    (("--strategy", "tpu"), "--strategy: expected default or mirrored"),
    (("--limit", "x"), "--limit: expected a positive integer, got 'x'"),
])
def test_bad_values_quote_the_option_and_value(argv, message):
    with pytest.raises(UsageError) as info:
        _cli(*argv)
    assert message in str(info.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(UsageError, match="CATSDOGS_DETERMINISTIC"):
        _cli(environ={"CATSDOGS_DETERMINISTIC": "maybe"})


def test_smoke_is_declared_by_limit_synthetic_or_few_epochs():
    assert _cli("--limit", "5").smoke and _cli("--synthetic").smoke
    assert _cli("--epochs", "4").smoke and not _cli("--epochs", "5").smoke


def test_pytest_and_cli_offer_the_same_options(pytestconfig):
    """bench/conftest.py adds exactly OPTIONS; check via a fresh parser of each kind."""
    from catsdogs.options import add_to_pytest

    added = []

    class Group:
        def addoption(self, flag, **kwargs):
            added.append(flag)

    class Parser:
        def getgroup(self, *args):
            return Group()

    add_to_pytest(Parser())
    parser = argparse.ArgumentParser()
    add_to_argparse(parser)
    cli_flags = [a.option_strings[0] for a in parser._actions if a.option_strings[0] != "-h"]
    assert added == cli_flags == [option.flag for option in OPTIONS]


# ---------------------------------------------------------------- issue 10: sources, bounds, ~


def test_a_flag_overrides_its_variable_even_a_bad_one():
    options = _cli("--epochs", "3", "--seeds", "7", environ={"CATSDOGS_EPOCHS": "zero",
                                                             "CATSDOGS_SEEDS": "-1"})
    assert options.epochs == 3 and options.seeds == (7,)


def test_a_flag_overrides_a_variable_of_an_option_it_excludes():
    from_flag = _cli("--synthetic", environ={"CATSDOGS_DATA_DIR": "/data/cats"})
    assert from_flag.synthetic and from_flag.data_dir is None
    from_flag = _cli("--data-dir", "/data/cats", environ={"CATSDOGS_SYNTHETIC": "1"})
    assert not from_flag.synthetic and from_flag.data_dir == "/data/cats"
    with pytest.raises(UsageError, match="CATSDOGS_SYNTHETIC and CATSDOGS_DATA_DIR: give one"):
        _cli(environ={"CATSDOGS_SYNTHETIC": "1", "CATSDOGS_DATA_DIR": "/data/cats"})
    with pytest.raises(UsageError, match="--synthetic and --data-dir: give one"):
        _cli("--synthetic", "--data-dir", "/data/cats")


@pytest.mark.parametrize("argv,environ,message", [
    (("--epochs", "x"), {"CATSDOGS_EPOCHS": "4"}, "--epochs: expected a positive integer"),
    ((), {"CATSDOGS_EPOCHS": "x"}, "CATSDOGS_EPOCHS: expected a positive integer, got 'x'"),
    ((), {"CATSDOGS_VARIANTS": "model9"}, "CATSDOGS_VARIANTS: unknown variant 'model9'"),
    ((), {"CATSDOGS_RESULTS_DIR": " "}, "CATSDOGS_RESULTS_DIR: expected a path"),
])
def test_an_error_names_where_the_bad_value_came_from(argv, environ, message):
    with pytest.raises(UsageError) as info:
        _cli(*argv, environ=environ)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("name", ["data_dir", "results_dir", "resume", "weights"])
def test_tilde_is_expanded_in_every_path_option_and_variable(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    flag = "--" + name.replace("_", "-")
    assert getattr(_cli(flag, "~/x"), name) == str(tmp_path / "x")
    assert getattr(_cli(environ={"CATSDOGS_" + name.upper(): "~/y"}), name) == str(tmp_path / "y")


@pytest.mark.parametrize("argv,value", [(("--seeds", "4294967295"), (2**32 - 1,)),
                                        (("--epochs", "10000"), 10_000),
                                        (("--batch-size", "8192"), 8_192)])
def test_the_bounds_themselves_are_accepted(argv, value):
    options = _cli(*argv)
    assert value in (options.seeds, options.epochs, options.batch_size)


@pytest.mark.parametrize("argv,message", [
    (("--seeds", "4294967296"), "--seeds: expected seeds from 0 to 4294967295"),
    (("--epochs", "10001"), "--epochs: expected a positive integer of at most 10,000"),
    (("--batch-size", "8193"), "--batch-size: expected a positive integer of at most 8,192"),
    (("--shard", "1/10001"), "--shard: expected N of at most 10,000"),
])
def test_integers_beyond_their_bounds_are_refused_where_parsed(argv, message):
    with pytest.raises(UsageError, match=message):
        _cli(*argv)


def test_catsdogs_data_is_declared_in_the_registry_and_read_by_resolve():
    """CATSDOGS_DATA (the short name README documents) is an alias of data_dir's
    variable, so `run` and `data` read the same variables, declared once."""
    from catsdogs.dataset.fetch import ENV_VARS
    from catsdogs.options import OPTIONS_BY_NAME

    assert ENV_VARS == OPTIONS_BY_NAME["data_dir"].env_names
    assert set(ENV_VARS) == {"CATSDOGS_DATA_DIR", "CATSDOGS_DATA"}
    assert _cli(environ={"CATSDOGS_DATA": "/d/cats"}).data_dir == "/d/cats"
    assert _cli("--data-dir", "/x", environ={"CATSDOGS_DATA": "/d"}).data_dir == "/x"
    with pytest.raises(UsageError, match="CATSDOGS_SYNTHETIC and CATSDOGS_DATA: give one"):
        _cli(environ={"CATSDOGS_SYNTHETIC": "1", "CATSDOGS_DATA": "/d"})


def test_speed_epochs_is_a_registered_option_with_its_variable():
    from catsdogs.options import SPEED_OPTIONS, resolve_one

    parser = argparse.ArgumentParser()
    add_to_argparse(parser, SPEED_OPTIONS)
    given = parser.parse_args(["--speed-epochs", "3"]).speed_epochs
    assert resolve_one("speed_epochs", given, environ={"CATSDOGS_SPEED_EPOCHS": "5"}) == 3
    assert resolve_one("speed_epochs", None, environ={"CATSDOGS_SPEED_EPOCHS": "5"}) == 5
    assert resolve_one("speed_epochs", None, environ={}) == 2
    with pytest.raises(UsageError, match="CATSDOGS_SPEED_EPOCHS: expected a positive integer, "
                                         "got '0'"):
        resolve_one("speed_epochs", None, environ={"CATSDOGS_SPEED_EPOCHS": "0"})


def test_compare_takes_its_sets_on_either_side_of_its_options():
    """`catsdogs compare A --alpha 0.1 --json j B` is base A, candidate B: argparse gathers
    the positionals itself, so no list of which options take values can drift."""
    from pathlib import Path

    from catsdogs.cli import _compare_sides, parse_args

    args = parse_args(["compare", "A", "--alpha", "0.1", "--json", "j", "B"])
    assert (args.alpha, args.json) == (0.1, Path("j"))
    assert _compare_sides(args.sets, args.candidate) == ([Path("A")], [Path("B")])
    args = parse_args(["compare", "A", "B", "--candidate", "C", "D", "--strict"])
    assert _compare_sides(args.sets, args.candidate) == ([Path("A"), Path("B")],
                                                          [Path("C"), Path("D")])
    with pytest.raises(UsageError, match="got 3 result set"):
        _compare_sides(*[parse_args(["compare", "A", "B", "C"]).sets, None])


def test_data_reads_its_options_from_the_registry_like_run(monkeypatch, capsys):
    """`catsdogs data` takes --data-dir/--synthetic and their variables through the one
    registry, so a bad value is refused with the same words as `catsdogs run`."""
    from catsdogs.cli import main

    monkeypatch.setenv("CATSDOGS_SYNTHETIC", "maybe")
    assert main(["data"]) == 2
    assert main(["run"]) == 2
    data_err, run_err = capsys.readouterr().err.strip().splitlines()
    assert data_err == run_err == ("catsdogs: error: CATSDOGS_SYNTHETIC: expected true or "
                                   "false, got 'maybe'")

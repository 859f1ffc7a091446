"""Bad input, as a user meets it on the command line (issue 6).

Every refusal: exit status 2, ONE line on stderr that starts `catsdogs: error:`, names the
path or option and says what was expected, no traceback, and nothing already recorded in
the results folder is changed. Refusals that need no TensorFlow run in a real
`python -m catsdogs` process with a stand-in `tensorflow` package that raises on import,
which proves they are reported before TensorFlow loads (in well under a second).
The few that need TensorFlow (does an image decode? do the weights fit?) call the same
`catsdogs.cli.main` in this process, which has TensorFlow loaded already, with Python's
warnings counted as stderr output (a real process prints them there); in a real process
TensorFlow's own C++ start-up log lines may come first, which catsdogs neither writes nor
can silence without hiding real GPU diagnostics. Real `catsdogs run` processes that load
TensorFlow are in tests/test_interruption.py.

Archive threats (wrong size, not a zip, members escaping the target, interrupted
downloads) are covered in tests/test_fetch.py.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_real_subset
from PIL import Image

from catsdogs.resultset.schema import RUN_COLUMNS
from catsdogs.resultset.store import ResultSet

#: Lines TensorFlow's C++ runtime writes on its own (absl log format), not catsdogs.
TF_LOG_LINE = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |"
                         r"WARNING: All log messages before absl::InitializeLog\(\) is called)")


# ---------------------------------------------------------------- helpers


def make_dataset(real: Path, dest: Path, per_class: int = 10) -> Path:
    """A valid cats_and_dogs_filtered layout with `per_class` real images per class and
    split, copied (never linked: tests damage these copies)."""
    return copy_real_subset(real, dest, {"train": per_class, "validation": per_class})


@pytest.fixture(scope="session")
def no_tensorflow(tmp_path_factory) -> Path:
    """A folder holding a `tensorflow` package that fails loudly when imported: put first
    on PYTHONPATH, it proves a command never got as far as loading TensorFlow."""
    stub = tmp_path_factory.mktemp("no_tensorflow")
    (stub / "tensorflow").mkdir()
    (stub / "tensorflow" / "__init__.py").write_text(
        'raise RuntimeError("TensorFlow was imported before the error was reported")\n')
    return stub


def catsdogs(*args: str, env: dict[str, str] | None = None, block_tf: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m catsdogs ARGS` with no CATSDOGS_* from the caller's environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    environ.update(env or {})
    if block_tf is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(block_tf),
                                                              environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "catsdogs", *args], capture_output=True,
                          text=True, env=environ, timeout=timeout, check=False)


def error_line(result: subprocess.CompletedProcess, *fragments: str,
               tf_logs: bool = False) -> str:
    """The one error line; fails unless exit 2, no traceback, and nothing else on stderr
    (apart from TensorFlow's own C++ log lines when `tf_logs`)."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if tf_logs:
        lines = [line for line in lines if not TF_LOG_LINE.match(line)]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("catsdogs: error: "), line
    assert re.search(r"expected|reads version", line), line  # says what would be right
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


@pytest.fixture
def cli(capsys, monkeypatch):
    """`catsdogs ARGS` in this process: returns a CompletedProcess like `catsdogs()` does.
    Warnings a plain `python` would print are appended to stderr; signal handlers that
    `catsdogs run` installs are put back afterwards."""
    from catsdogs.cli import main

    for key in [k for k in os.environ if k.startswith("CATSDOGS_")]:
        monkeypatch.delenv(key)
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def run(*argv: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            code = main(list(argv))
        out, err = capsys.readouterr()
        quiet = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
        err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                       for w in caught if not issubclass(w.category, quiet))
        return subprocess.CompletedProcess(argv, code, out, err)

    yield run
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


FAKE_ENV = {"host": "testhost", "tf_version": "2.99", "device": "cpu", "device_label": "cpu",
            "dataset": "real", "dataset_fingerprint": "f" * 64}


def fake_row(run_id: str, seed: int, **extra) -> dict:
    """A complete, plausible run row (no training needed)."""
    row = {column: "" for column in RUN_COLUMNS}
    row.update(run_id=run_id, variant="baseline_cnn", alias="model1", seed=seed, status="ok",
               epochs=1, epochs_completed=1, batch_size=32, image_size="160x160",
               dataset="real", dataset_fingerprint="f" * 64, dataset_fingerprint_known=True,
               n_train=2000, n_validation=808, n_test=192, skipped_images=0, pretrained=False,
               deterministic=False, mixed_precision=False, xla=False, strategy="default",
               replicas=1, train_accuracy=0.7, val_accuracy=0.68, test_accuracy=132 / 192,
               overfit_gap=0.02, train_loss=0.5, val_loss=0.6, test_loss=0.61,
               test_correct=132, test_p_value=1e-8, step_time_ms=20.0, step_time_ms_p90=22.0,
               images_per_sec=1600.0, first_epoch_s=3.0, train_wall_s=5.0, peak_rss_mb=900.0,
               params_total=100, params_trainable=100, params_non_trainable=0,
               tf_version="2.99", keras_version="3.99", python_version="3.11.7",
               device="cpu", host="testhost", started_utc="2030-01-01T00:00:00+00:00",
               finished_utc="2030-01-01T00:01:00+00:00")
    row.pop("schema_version")
    row.pop("result_set")
    row.update(extra)
    return row


def fake_epoch(run_id: str, seed: int) -> dict:
    return {"run_id": run_id, "variant": "baseline_cnn", "seed": seed, "epoch": 1,
            "loss": 0.5, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.68,
            "epoch_s": 3.0, "train_s": 2.5, "steps": 63, "step_ms_median": 20.0}


@pytest.fixture
def recorded(tmp_path) -> Path:
    """A results folder that already holds a result set with two rows: every failed
    command below must leave it byte for byte as it was, and add no new set."""
    results = tmp_path / "results"
    result_set = ResultSet.create(results, FAKE_ENV)
    for seed in (0, 1):
        result_set.append_run(fake_row(f"r{seed}", seed), [fake_epoch(f"r{seed}", seed)])
    return results


@pytest.fixture
def dataset(tmp_path, real_data_dir) -> Path:
    return make_dataset(real_data_dir, tmp_path / "data" / "cats_and_dogs_filtered")


def run_args(data_dir: Path, results: Path, *more: str) -> list[str]:
    return ["run", "--data-dir", str(data_dir), "--results-dir", str(results),
            "--variants", "model1", "--seeds", "0", "--epochs", "1", *more]


# ---------------------------------------------------------------- data: the layout


def _remove(path: Path) -> None:
    shutil.rmtree(path)


def _empty_class(data: Path) -> None:
    for image in (data / "train" / "cats").iterdir():
        image.unlink()
    (data / "train" / "cats" / "notes.txt").write_text("no images in here")


def _extra_class(data: Path) -> None:
    (data / "train" / "birds").mkdir()
    shutil.copyfile(data / "train" / "cats" / "cat.0.jpg", data / "train" / "birds" / "b.jpg")


LAYOUTS = {
    # name: (damage(data) -> the --data-dir to pass, fragments the line must hold)
    "folder missing": (lambda d: d.parent / "nowhere", ["--data-dir", "nowhere",
                                                        "no such folder"]),
    "a file, not a folder": (lambda d: (shutil.rmtree(d), d.write_text("x"), d)[-1],
                             ["cats_and_dogs_filtered", "is a file, not a folder"]),
    "train missing": (lambda d: (_remove(d / "train"), d)[-1], ["no train/ folder"]),
    "validation missing": (lambda d: (_remove(d / "validation"), d)[-1],
                           ["no validation/ folder"]),
    "class folder missing": (lambda d: (_remove(d / "validation" / "dogs"), d)[-1],
                             ["validation': no dogs/ folder", "cats/ and dogs/"]),
    "class folder empty": (lambda d: (_empty_class(d), d)[-1], ["train/cats': no images"]),
    "extra class folder": (lambda d: (_extra_class(d), d)[-1],
                           ["unexpected class folder birds/", "only cats/ and dogs/"]),
}


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_bad_dataset_layout_is_one_line_exit_2_before_tensorflow(case, dataset, recorded,
                                                                  no_tensorflow):
    damage, fragments = LAYOUTS[case]
    data_dir = damage(dataset)
    before = snapshot(recorded)
    line = error_line(catsdogs(*run_args(data_dir, recorded), block_tf=no_tensorflow),
                      *fragments)
    assert str(dataset.parent) in line  # the path is named in full
    assert snapshot(recorded) == before
    if case == "class folder missing":  # `catsdogs data` refuses with the same line
        assert error_line(catsdogs("data", "--data-dir", str(data_dir),
                                   block_tf=no_tensorflow), *fragments) == line


# ---------------------------------------------------------------- data: the images


def _save_variants(src: Path, folder: Path, stem: str) -> list[str]:
    """PNG (RGBA), grayscale JPEG, CMYK JPEG, GIF and BMP copies of one real image."""
    image = Image.open(src).convert("RGB")
    names = {f"{stem}.rgba.png": image.convert("RGBA"), f"{stem}.gray.jpg": image.convert("L"),
             f"{stem}.cmyk.jpg": image.convert("CMYK"), f"{stem}.gif": image,
             f"{stem}.bmp": image}
    for name, converted in names.items():
        converted.save(folder / name)
    return sorted(names)


def _add_bad_files(data: Path) -> list[str]:
    """Three undecodable images (truncated, not an image, empty) plus non-image files and
    a hidden file; returns the bad images' relative paths."""
    good = (data / "train" / "cats" / "cat.0.jpg").read_bytes()
    bad = {"train/cats/cat.999.jpg": good[: len(good) // 2],  # truncated JPEG
           "train/dogs/dog.998.jpg": b"",  # empty
           "validation/dogs/dog.2999.jpg": b"<html>404 Not Found</html>"}  # not an image
    for rel, content in bad.items():
        (data / rel).write_bytes(content)
    (data / "train" / "cats" / "notes.txt").write_text("a non-image file: ignored, counted")
    (data / "validation" / "dogs" / "Thumbs.db").write_bytes(b"\0" * 64)
    (data / "train" / "dogs" / ".DS_Store").write_bytes(b"\0" * 16)  # hidden: not even counted
    return sorted(bad)


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory, real_data_dir):
    """10 real JPEGs per class and split, plus PNG/grayscale/CMYK/GIF/BMP images, three
    bad images and non-image files; what differs from the official set is fingerprinted."""
    data = make_dataset(real_data_dir,
                        tmp_path_factory.mktemp("mixed") / "cats_and_dogs_filtered")
    converted = (_save_variants(data / "train" / "cats" / "cat.1.jpg", data / "train" / "cats",
                                "cat.x")
                 + _save_variants(data / "validation" / "dogs" / "dog.2001.jpg",
                                  data / "validation" / "dogs", "dog.x"))
    return data, _add_bad_files(data), converted


@pytest.mark.slow
def test_undecodable_images_are_listed_at_once_exit_2(mixed_dataset, recorded, cli):
    data, bad, _ = mixed_dataset
    before = snapshot(recorded)
    line = error_line(cli(*run_args(data, recorded)), "3 unreadable image(s)", str(data),
                      "--skip-bad-images")
    for rel in bad:  # every culprit, with TensorFlow's reason, not only the first
        assert rel in line
    assert "Invalid JPEG data" in line and "Input is empty" in line
    assert "Unknown image file format" in line and "function_node" not in line
    assert snapshot(recorded) == before  # refused before a result set was created


@pytest.fixture
def skipped_run(mixed_dataset, tmp_path, cli):
    """`catsdogs run --skip-bad-images` on the mixed dataset (training one model1 epoch)."""
    data, _, _ = mixed_dataset
    results = tmp_path / "results"
    out = cli(*run_args(data, results, "--batch-size", "8", "--skip-bad-images"))
    assert out.returncode == 0, out.stderr[-4000:]
    (result_set,) = (results / "runs").iterdir()
    return out, result_set


@pytest.mark.slow
def test_skip_bad_images_non_image_files_and_other_data_proceed_and_are_recorded(
        skipped_run, mixed_dataset):
    _, bad, _ = mixed_dataset
    out, result_set = skipped_run
    assert "skipping 3 unreadable image(s) (--skip-bad-images; recorded)" in out.stderr
    environment = json.loads((result_set / "environment.json").read_text())
    assert environment["skipped_images"] == bad
    assert environment["options"]["skip_bad_images"] is True
    (row,) = read_rows(result_set / "runs.csv")
    assert row["status"] == "ok" and row["skipped_images"] == "3"
    # Every readable image was used, the converted ones included.
    assert int(row["n_train"]) == 20 + 5
    assert int(row["n_validation"]) + int(row["n_test"]) == 20 + 5
    # Non-image files: ignored like Keras does, but counted and reported.
    assert "ignored 2 non-image file(s), as Keras does" in out.stderr
    assert "train/cats/notes.txt" in out.stderr and "Thumbs.db" in out.stderr
    assert ".DS_Store" not in out.stderr  # hidden files are not even counted
    assert environment["non_image_files"] == 2
    # Not the official data: the run proceeds, flagged in the output and in every row.
    assert "NOT the official set" in out.stderr
    assert environment["dataset_fingerprint_known"] is False
    assert row["dataset_fingerprint_known"] == "false"
    assert row["dataset_fingerprint"] == environment["dataset_fingerprint"]


@pytest.mark.slow
def test_png_grayscale_cmyk_gif_bmp_become_rgb_exactly_as_keras_reads_them(mixed_dataset,
                                                                          tmp_path):
    """Our decode (cached and uncached pipelines) against Keras' own
    image_dataset_from_directory on the same files: RGB, 160x160, within rounding."""
    import tensorflow as tf
    from tensorflow import keras

    from catsdogs.dataset.pipeline import decode_files, file_dataset

    data, _, converted = mixed_dataset
    folder = tmp_path / "keras" / "only"
    folder.mkdir(parents=True)
    rels = []
    for name in converted:
        split_dir = "train/cats" if name.startswith("cat") else "validation/dogs"
        shutil.copyfile(data / split_dir / name, folder / name)
        rels.append(f"{split_dir}/{name}")
    theirs = keras.utils.image_dataset_from_directory(
        folder.parent, labels=None, image_size=(160, 160), shuffle=False, batch_size=64,
        verbose=False)
    theirs = np.concatenate([batch.numpy() for batch in theirs])  # sorted by file name
    order = sorted(range(len(converted)), key=lambda i: converted[i])
    ours, bad = decode_files(data, [rels[i] for i in order])
    assert bad == [] and ours.shape == (len(converted), 160, 160, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(np.float32) - theirs).max() <= 0.5 + 1e-3
    # ... and the colours are right: each conversion is close to the JPEG it came from.
    for stem, original in (("cat.x", "train/cats/cat.1.jpg"),
                           ("dog.x", "validation/dogs/dog.2001.jpg")):
        reference = decode_files(data, [original])[0][0].astype(np.float32)
        for i in order:
            if converted[i].startswith(stem) and "gray" not in converted[i]:
                position = [rels[j] for j in order].index(rels[i])
                assert np.abs(ours[position] - reference).mean() < 3.0, converted[i]
    uncached = file_dataset(data, [rels[i] for i in order], [0] * len(order), batch_size=64,
                            shuffle_seed=None)
    (images, _), = list(uncached)
    assert np.array_equal(images.numpy().astype(np.uint8), ours)
    assert tf.reduce_all(tf.equal(images, tf.round(images)))


# ---------------------------------------------------------------- weights for model4


def test_model4_missing_weights_file_is_refused_before_tensorflow(dataset, recorded,
                                                                 no_tensorflow, tmp_path):
    before = snapshot(recorded)
    missing = tmp_path / "nope.weights.h5"
    error_line(catsdogs(*run_args(dataset, recorded, "--variants", "model1,model4",
                                  "--weights", str(missing)), block_tf=no_tensorflow),
               "--weights", str(missing), "MobileNetV2")
    assert snapshot(recorded) == before


@pytest.mark.slow
def test_model4_weights_of_another_model_are_refused_before_any_training(dataset, recorded,
                                                                        tmp_path, cli):
    """Weights saved from a different Keras model (a .weights.h5 that is a valid file of
    the wrong shape), with model1 first in the matrix: refused before model1 trains."""
    from tensorflow import keras

    wrong = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(wrong)
    before = snapshot(recorded)
    out = cli(*run_args(dataset, recorded, "--variants", "model1,model4",
                        "--weights", str(wrong)))
    error_line(out, "--weights", str(wrong), "MobileNetV2", "could not be loaded")
    assert "epoch" not in out.stderr and "UserWarning" not in out.stderr
    assert snapshot(recorded) == before


# ---------------------------------------------------------------- options


OPTION_CASES = {
    # name: (extra argv, extra environment, fragments)
    "unknown variant": (["--variants", "model9"], {}, ["--variants: unknown variant 'model9'",
                                                       "model1 (baseline_cnn)"]),
    "epochs 0": (["--epochs", "0"], {}, ["--epochs: expected a positive integer, got '0'"]),
    "epochs not an integer": (["--epochs", "1.5"], {}, ["--epochs", "'1.5'"]),
    "seed negative": (["--seeds", "0,-1"], {}, ["--seeds: expected non-negative integers",
                                                "'0,-1'"]),
    "seed not an integer": (["--seeds", "0.5"], {}, ["--seeds", "'0.5'"]),
    "batch size 0": (["--batch-size", "0"], {}, ["--batch-size: expected a positive integer"]),
    "limit larger than a class": (["--limit", "11"], {},
                                  ["--limit: 11 is larger than the smallest class folder",
                                   "has 10 images", "at most 10"]),
    "shard K > N": (["--shard", "3/2"], {}, ["--shard: expected 1 <= K <= N, got '3/2'"]),
    "shard K = 0": (["--shard", "0/2"], {}, ["--shard", "'0/2'"]),
    "shard not K/N": (["--shard", "2"], {}, ["--shard: expected K/N"]),
    "resume not a result set": (["--resume", "{tmp}"], {}, ["--resume", "not a result set",
                                                            "runs.csv"]),
    "results dir not writable": (["--results-dir", "{tmp}/a-file/results"], {},
                                 ["--results-dir: cannot write into", "a-file/results/runs",
                                  "Not a directory"]),
    # The same mistakes through the environment name the variable.
    "env unknown variant": ([], {"CATSDOGS_VARIANTS": "model9"},
                            ["CATSDOGS_VARIANTS: unknown variant 'model9'"]),
    "env epochs 0": ([], {"CATSDOGS_EPOCHS": "0"},
                     ["CATSDOGS_EPOCHS: expected a positive integer, got '0'"]),
    "env seed negative": ([], {"CATSDOGS_SEEDS": "-1"}, ["CATSDOGS_SEEDS", "'-1'"]),
    "env batch size 0": ([], {"CATSDOGS_BATCH_SIZE": "0"}, ["CATSDOGS_BATCH_SIZE", "'0'"]),
    "env limit larger than a class": ([], {"CATSDOGS_LIMIT": "11"}, ["--limit: 11 is larger"]),
    "env shard out of range": ([], {"CATSDOGS_SHARD": "5/4"}, ["CATSDOGS_SHARD", "'5/4'"]),
    "env results dir not writable": ([], {"CATSDOGS_RESULTS_DIR": "{tmp}/a-file/results"},
                                     ["--results-dir: cannot write into", "Not a directory"]),
    "env flag not a boolean": ([], {"CATSDOGS_SKIP_BAD_IMAGES": "maybe"},
                               ["CATSDOGS_SKIP_BAD_IMAGES: expected true or false"]),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option_is_one_line_exit_2_before_tensorflow(case, dataset, recorded, tmp_path,
                                                         no_tensorflow):
    """As root too: an unwritable results folder is one *under a regular file*, which no
    permission bit can make writable."""
    argv, env, fragments = OPTION_CASES[case]
    (tmp_path / "a-file").write_text("a regular file where a folder is expected")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    env = {key: value.replace("{tmp}", str(tmp_path)) for key, value in env.items()}
    base = ["run", "--data-dir", str(dataset)]
    if "--results-dir" not in argv and "CATSDOGS_RESULTS_DIR" not in env:
        base += ["--results-dir", str(recorded)]
    before = snapshot(recorded)
    error_line(catsdogs(*base, *argv, env=env, block_tf=no_tensorflow), *fragments)
    assert snapshot(recorded) == before
    assert not (tmp_path / "a-file").is_dir()


# ---------------------------------------------------------------- results: report, compare


def _drop_column(path: Path, column: str) -> None:
    rows = read_rows(path)
    columns = [c for c in rows[0] if c != column]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _set_schema_version(path: Path, version: str) -> None:
    rows = read_rows(path)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows([dict(row, schema_version=version) for row in rows])


def _empty_folder(path: Path) -> Path:
    path.mkdir()
    return path


RESULT_CASES = {
    # name: (damage(result set) -> path to pass, fragments)
    "no result set in the folder": (lambda s: _empty_folder(s.parents[2] / "not-a-set"),
                                    ["not-a-set", "runs.csv"]),
    "missing column": (lambda s: (_drop_column(s / "runs.csv", "test_accuracy"), s)[-1],
                       ["runs.csv", "test_accuracy"]),
    "unknown schema_version": (lambda s: (_set_schema_version(s / "runs.csv", "99"), s)[-1],
                               ["runs.csv", "schema_version", "99"]),
    "empty runs.csv (0 bytes)": (lambda s: ((s / "runs.csv").write_text(""), s)[-1],
                                 ["runs.csv", "empty"]),
    "runs.csv with a header only": (
        lambda s: ((s / "runs.csv").write_text(",".join(RUN_COLUMNS) + "\n"), s)[-1],
        ["runs.csv"]),
}


@pytest.fixture
def good_set(recorded) -> Path:
    (result_set,) = (recorded / "runs").iterdir()
    return result_set


# compare reads result sets with report's loader: two cases show it is wired to it.
@pytest.mark.parametrize("case,command", [(case, "report") for case in RESULT_CASES] + [
    ("no result set in the folder", "compare"), ("unknown schema_version", "compare")])
def test_bad_result_set_is_one_line_exit_2(case, command, good_set, tmp_path, no_tensorflow):
    damage, fragments = RESULT_CASES[case]
    other = tmp_path / "other"
    shutil.copytree(good_set, other)  # an intact set for the other side of compare
    given = damage(good_set)
    before = snapshot(tmp_path)
    argv = ["report", str(given)] if command == "report" else ["compare", str(other),
                                                               str(given)]
    line = error_line(catsdogs(*argv, block_tf=no_tensorflow), *fragments)
    assert str(given) in line
    assert snapshot(tmp_path) == before  # nothing written next to (or into) the sets

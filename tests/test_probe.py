"""catsdogs probe on the real images, with real training (issue 20): probing one
environment twice is identical, the probe's training steps are `catsdogs run`'s own, a
difference planted in one layer (its weights, or its output) is found at that layer and
no earlier, and the refusals come before TensorFlow loads. Tiny: --limit 32 (64 training
images, two steps), model1 and model2."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from probes import fake_probe
from test_bad_inputs import (  # noqa: F401 - cli and no_tensorflow are fixtures
    catsdogs,
    cli,
    error_line,
    no_tensorflow,
)

from catsdogs.attribution.diff import diff_probes
from catsdogs.attribution.fileformat import ENTRY_KEYS, LAYER_KINDS, read_probe
from catsdogs.attribution.probe import leaf_layers, run_probe
from catsdogs.models import build_model
from catsdogs.options import PROBE_DEFAULTS, resolve

pytestmark = pytest.mark.slow

LIMIT = "32"


@pytest.fixture
def tf_blocked(request):
    """A PYTHONPATH folder whose `tensorflow` fails on import (test_bad_inputs')."""
    return request.getfixturevalue("no_tensorflow")


def probe_args(data_dir, *extra: str) -> list[str]:
    return ["--variants", "model1,model2", "--limit", LIMIT, "--steps", "2", "--data-dir",
            str(data_dir), *extra]


@pytest.fixture(scope="module")
def first_probe(real_data_dir, tmp_path_factory):
    """A probe made in this process through the command (model1, model2, seed 0)."""
    from catsdogs.cli import main

    out = tmp_path_factory.mktemp("probe") / "a.npz"
    assert main(["probe", *probe_args(real_data_dir), "--out", str(out)]) == 0
    return out


def _options(real_data_dir):
    return resolve({"variants": "model1,model2", "limit": LIMIT, "data_dir": str(real_data_dir)},
                   environ={}, defaults=PROBE_DEFAULTS)


def test_a_probe_of_another_process_in_this_environment_is_identical(first_probe,
                                                                     real_data_dir, tmp_path):
    again = tmp_path / "b.npz"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    done = subprocess.run([sys.executable, "-m", "catsdogs", "probe", *probe_args(real_data_dir),
                           "--out", str(again)], capture_output=True, text=True, env=environ,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    compared = subprocess.run([sys.executable, "-m", "catsdogs", "probe-diff", str(first_probe),
                               str(again)], capture_output=True, text=True, env=environ,
                              timeout=120)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    lines = compared.stdout.splitlines()
    assert "model1 (baseline_cnn) seed 0: identical" in lines
    assert "model2 (augmented_cnn) seed 0: identical" in lines
    assert not [line for line in lines if "different machines" in line]


def test_the_file_holds_what_the_format_promises(first_probe):
    probe = read_probe(first_probe)
    meta = probe.meta
    assert set(meta) == set(fake_probe().meta) | {"catsdogs_version", "created_utc", "command"}
    assert meta["provenance"]["tf_version"] and meta["provenance"]["packages"]["keras"]
    assert meta["machine"]["cpu_model"] and meta["data"]["dataset_fingerprint_known"] is True
    model1, model2 = probe.entries
    assert set(ENTRY_KEYS) <= set(model1) and set(model1) == set(fake_probe().entries[0])
    assert [layer["class"] for layer in model2["layers"][:3]] == [
        "RandomFlip", "RandomRotation", "Conv2D"]
    assert [layer["index"] for layer in model2["layers"][:3]] == ["0.0", "0.1", "1"]
    conv = model1["layers"][0]
    assert all(conv[kind] for kind in LAYER_KINDS)
    assert conv["forward"]["shape"] == [32, 158, 158, 16]
    assert model1["layers"][1]["gradient"] is None  # pooling has no weights
    assert model1["steps"]["done"] == 2 and len(set(map(str, model1["steps"]["batches"]))) == 2
    assert first_probe.stat().st_size < 1_000_000


def test_the_probes_steps_are_the_runs_own(first_probe, real_data_dir, tmp_path, capsys):
    """One epoch of `catsdogs run` on the same 64 images is the probe's two steps: its
    epoch loss (Keras' mean over the epoch) is the probe's last reported loss, exactly."""
    from catsdogs.cli import main

    results = tmp_path / "results"
    assert main(["run", "--variants", "model1,model2", "--seeds", "0", "--epochs", "1",
                 "--limit", LIMIT, "--data-dir", str(real_data_dir), "--results-dir",
                 str(results)]) == 0
    (epochs_csv,) = results.glob("runs/*/epochs.csv")
    with open(epochs_csv, newline="") as handle:
        epoch_loss = {row["variant"]: float(row["loss"]) for row in csv.DictReader(handle)}
    probed = {entry["variant"]: entry["steps"]["losses"][-1]
              for entry in read_probe(first_probe).entries}
    assert probed == epoch_loss


def _perturbed(variant: str, change):
    """models.build_model, with `change(model)` applied to `variant`'s model only."""
    def build(name, **kwargs):
        model = build_model(name, **kwargs)
        if name == variant:
            change(model)
        return model
    return build


def test_a_planted_weight_difference_is_found_at_that_layer_and_no_earlier(
        first_probe, real_data_dir, tmp_path):
    def nudge_third_conv(model):
        kernel = dict(leaf_layers(model))["4"].kernel
        value = kernel.numpy()
        value[0, 0, 0, :] += 1e-3
        kernel.assign(value)

    out = tmp_path / "planted.npz"
    run_probe(_options(real_data_dir), 2, out,
              build=_perturbed("baseline_cnn", nudge_third_conv))
    result = diff_probes(read_probe(first_probe), read_probe(out))
    model1, model2 = result.variants
    assert model2.identical and result.exit_code == 1
    assert [(f.kind, f.where) for f in model1.findings[:2]] == [
        ("initial_weights", "4 conv2d_2 (Conv2D)"), ("forward", "4 conv2d_2 (Conv2D)")]
    assert model1.findings[0].change.max_abs == pytest.approx(1e-3, rel=1e-2)
    assert {f.kind for f in model1.findings} >= {"gradient", "step", "final_weights"}


def test_a_planted_output_difference_is_found_at_the_rotation(first_probe, real_data_dir,
                                                              tmp_path):
    """model2's RandomRotation returns its output plus 0.5 on the batch's first image (in
    the probe's pass and in training alike): found there, not at the flip before it."""
    import tensorflow as tf

    def shift_rotation(model):
        rotation = dict(leaf_layers(model))["0.1"]
        original = rotation.call

        def call(inputs, training=None):
            out = original(inputs, training=training)
            first = tf.one_hot(0, tf.shape(out)[0], dtype=out.dtype)
            return out + 0.5 * first[:, None, None, None]
        rotation.call = call

    out = tmp_path / "planted.npz"
    run_probe(_options(real_data_dir), 2, out, build=_perturbed("augmented_cnn", shift_rotation))
    model1, model2 = diff_probes(read_probe(first_probe), read_probe(out)).variants
    assert model1.identical
    first = model2.findings[0]
    assert (first.kind, first.where) == ("forward", "0.1 random_rotation (RandomRotation)")
    assert first.change.max_abs == pytest.approx(0.5, abs=1e-4)
    assert first.change.fraction == pytest.approx(1 / 32, abs=0.02)
    assert not [f for f in model2.findings if f.kind == "initial_weights"]
    assert model2.headline().startswith("differs at layer 0.1 random_rotation")
    assert np.isfinite(first.change.max_rel)


# ---------------------------------------------------------------- refusals, before TensorFlow


@pytest.mark.parametrize("extra, fragments", [
    (["--steps", "0"], ["--steps: expected a positive integer, got '0'"]),
    (["--batch-size", "-1"], ["--batch-size: expected a positive integer, got '-1'"]),
    (["--variants", "model9"], ["unknown variant 'model9'"]),
], ids=["steps", "batch size", "variant"])
def test_bad_probe_options_are_one_line_before_tensorflow(tmp_path, tf_blocked, extra,
                                                          fragments):
    out = tmp_path / "p.npz"
    result = catsdogs("probe", "--out", str(out), *extra, block_tf=tf_blocked)
    error_line(result, *fragments)
    assert not out.exists()


def test_an_existing_or_homeless_out_is_refused_before_tensorflow(tmp_path, tf_blocked):
    existing = tmp_path / "old.npz"
    existing.write_bytes(b"recorded")
    error_line(catsdogs("probe", "--out", str(existing), block_tf=tf_blocked),
               f"--out {existing}: already exists; expected a new file")
    assert existing.read_bytes() == b"recorded"
    homeless = tmp_path / "nowhere" / "p.npz"
    error_line(catsdogs("probe", "--out", str(homeless), block_tf=tf_blocked),
               f"--out {homeless}: no folder")
    missing = catsdogs("probe", block_tf=tf_blocked)
    assert missing.returncode == 2 and missing.stderr == (
        "catsdogs: error: catsdogs probe: the following arguments are required: --out\n")

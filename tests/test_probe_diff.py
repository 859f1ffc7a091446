"""probe-diff (issue 20): identical, or the first layer that differs and by how much, and
the refusals (exit 2, one line) of probes that cannot be compared. The probes here are
built by tests/probes.py from fixed arrays with the real Recorder, so these tests need no
TensorFlow; tests/test_probe.py compares probes that real training made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from probes import fake_probe, write_fake
from test_bad_inputs import (  # noqa: F401 - cli and no_tensorflow are fixtures
    catsdogs,
    cli,
    error_line,
    no_tensorflow,
)

from catsdogs.attribution.diff import compare_arrays, diff_probes
from catsdogs.attribution.fileformat import (
    FORMAT,
    SAMPLE_SIZE,
    Recorder,
    encode,
    read_probe,
    sample_indices,
)


@pytest.fixture
def command(request):
    """`catsdogs ARGS` in this process (test_bad_inputs' `cli` fixture)."""
    return request.getfixturevalue("cli")


@pytest.fixture
def tf_blocked(request):
    """A PYTHONPATH folder whose `tensorflow` fails on import (test_bad_inputs')."""
    return request.getfixturevalue("no_tensorflow")



def _planted_fraction(size: int, every: int = 4) -> float:
    """The share of sampled positions that tests/probes.py's `_planted` moves."""
    return float(np.mean(sample_indices(size) % every == 0))


def test_the_same_probe_twice_is_identical_exit_0():
    result = diff_probes(fake_probe("A"), fake_probe("B"))
    assert result.exit_code == 0 and result.identical
    assert "model3 (preprocessed_cnn) seed 0: identical" in result.text()


def test_a_planted_forward_difference_is_found_at_that_layer_and_no_earlier():
    result = diff_probes(fake_probe("A"), fake_probe("B", changed_from="1.1"))
    assert result.exit_code == 1
    (variant,) = result.variants
    first = variant.findings[0]
    assert (first.kind, first.where) == ("forward", "1.1 random_rotation (RandomRotation)")
    assert not [f for f in variant.findings if f.kind in ("initial_weights", "input")]
    assert first.change.compared == SAMPLE_SIZE and not first.change.exact
    assert first.change.fraction == pytest.approx(_planted_fraction(3000))
    assert first.change.max_abs == pytest.approx(1e-3, rel=1e-3)
    assert variant.headline().startswith(
        "differs at layer 1.1 random_rotation (RandomRotation) (forward output: max abs 0.001")
    kinds = [f.kind for f in variant.findings]
    assert kinds == ["forward", "loss", "gradient", "step", "final_weights"]
    gradient = variant.findings[kinds.index("gradient")]
    assert gradient.where == "2 conv2d (Conv2D)"
    assert "training first differs at step 1 of 2" in result.text()


def test_planted_initial_weights_come_first_at_their_layer():
    result = diff_probes(fake_probe("A"), fake_probe("B", weights_at="2"))
    (variant,) = result.variants
    assert [(f.kind, f.where) for f in variant.findings[:2]] == [
        ("initial_weights", "2 conv2d (Conv2D)"), ("forward", "2 conv2d (Conv2D)")]
    # 500 weights: all of them are stored, so the fraction is exact
    assert variant.findings[0].change.exact and variant.findings[0].change.compared == 500
    assert variant.headline().startswith("differs at layer 2 conv2d (Conv2D) (initial weights:")


def test_the_earliest_layer_leads_whatever_the_kind():
    """A forward output that parts at 1.1 comes before initial weights that differ at 4."""
    result = diff_probes(fake_probe("A"), fake_probe("B", changed_from="1.1", weights_at="4"))
    (variant,) = result.variants
    assert [(f.kind, f.where.split()[0]) for f in variant.findings[:2]] == [
        ("forward", "1.1"), ("initial_weights", "4")]
    assert "initial weights first differ at layer 4 dense (Dense)" in result.text()


def test_only_the_changed_variant_differs():
    variants = (("baseline_cnn", "model1"), ("preprocessed_cnn", "model3"))
    result = diff_probes(fake_probe("A", variants=variants),
                         fake_probe("B", variants=variants, changed_from="1.1",
                                    only="preprocessed_cnn"))
    lines = result.text().splitlines()
    assert "model1 (baseline_cnn) seed 0: identical" in lines
    assert any(line.startswith("model3 (preprocessed_cnn) seed 0: differs at layer 1.1")
               for line in lines)
    assert result.exit_code == 1


def test_a_difference_in_the_training_steps_alone_is_named_with_its_step():
    a, b = fake_probe("A"), fake_probe("B")
    b.meta["probes"][0]["steps"]["losses"][1] += 1e-6
    (variant,) = diff_probes(a, b).variants
    assert [f.kind for f in variant.findings] == ["step"]
    assert variant.headline().startswith("differs: training first differs at step 2 of 2")


def test_a_changed_data_order_is_told_apart_from_arithmetic():
    a, b = fake_probe("A"), fake_probe("B")
    b.meta["probes"][0]["steps"]["batches"][0]["images"] = "other"
    (variant,) = diff_probes(a, b).variants
    assert variant.findings[0].kind == "batches"
    assert "data order changed" in variant.headline()


def test_different_machines_say_bit_identity_is_not_expected():
    other = fake_probe("B", machine={"cpu_model": "Intel Xeon", "cpu_flags": ["avx512f"],
                                     "cpu_flags_sha256": "f2"})
    text = diff_probes(fake_probe("A"), other).text()
    assert "different machines" in text and "bit-identity is not expected" in text
    assert "'AMD EPYC' vs 'Intel Xeon'" in text and "only in B: avx512f" in text
    assert "bit-identity" not in diff_probes(fake_probe("A"), fake_probe("B")).text()


def test_machine_fingerprints_that_differ_are_named():
    """The provenance holds the session's machine facts (catsdogs.training.machine): a
    pinned session's fingerprint differs though the CPU is the same."""
    a, b = fake_probe("A"), fake_probe("B")
    a.meta["provenance"]["machine"] = {"fingerprint": "7c2048787cf6", "cpus_usable": 1}
    b.meta["provenance"]["machine"] = {"fingerprint": "e7f2a43f5494", "cpus_usable": 2}
    text = diff_probes(a, b).text()
    assert "machine_fingerprint '7c2048787cf6' vs 'e7f2a43f5494'" in text
    assert "bit-identity is not expected" in text


def test_the_packages_that_differ_are_listed():
    newer = fake_probe("B", packages={"tensorflow": "2.21.0", "keras": "3.15.1"})
    text = diff_probes(fake_probe("A"), newer).text()
    assert "packages that differ: keras 3.7.0 -> 3.15.1, tensorflow 2.18.1 -> 2.21.0" in text


# ---------------------------------------------------------------- measuring on the sample


def _records(a: np.ndarray, b: np.ndarray):
    recorder = Recorder()
    ra, rb = recorder.measure("a", a), recorder.measure("b", b)
    return ra, recorder.arrays["a"], rb, recorder.arrays["b"]


def test_a_change_outside_the_sample_is_still_seen_by_the_digest():
    a = np.zeros(5000, np.float32)
    unsampled = sorted(set(range(5000)) - set(sample_indices(5000).tolist()))[0]
    b = a.copy()
    b[unsampled] = 1.0
    change = compare_arrays(*_records(a, b))
    assert change is not None and change.changed == 0
    assert "outside the sample" in change.text()


def test_relative_difference_and_nan_and_shape():
    a = np.array([1.0, 2.0, np.nan, 0.0], np.float32)
    b = np.array([1.0, 2.5, np.nan, 0.0], np.float32)
    change = compare_arrays(*_records(a, b))
    assert (change.changed, change.compared, change.exact) == (1, 4, True)
    assert change.max_abs == pytest.approx(0.5) and change.max_rel == pytest.approx(0.2)
    assert "25.0% of all 4 values changed" in change.text()
    assert compare_arrays(*_records(a, a.copy())) is None
    reshaped = compare_arrays(*_records(a, a.reshape(2, 2)))
    assert reshaped.text() == "shape [4] -> [2, 2]"


def test_sample_positions_depend_on_the_size_alone_and_cover_the_array():
    first, again = sample_indices(2_457_600), sample_indices(2_457_600)
    assert np.array_equal(first, again) and len(set(first.tolist())) == SAMPLE_SIZE
    assert len(set((first % 3).tolist())) == 3  # every colour channel of an NHWC image
    assert first.min() < 2_457_600 * 0.01 and first.max() > 2_457_600 * 0.99
    assert np.array_equal(sample_indices(10), np.arange(10))


def test_a_probe_file_round_trips(tmp_path):
    path = write_fake(tmp_path / "a.npz", changed_from="2")
    again = read_probe(path)
    assert again.meta == fake_probe().meta | {"probes": again.meta["probes"]}
    assert diff_probes(again, fake_probe("B", changed_from="2")).identical


# ---------------------------------------------------------------- refusals: exit 2, one line


def _npz(path, meta=None, **arrays):
    if meta is not None:
        arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, fragments", [
    (lambda d: d / "missing.npz", ["missing.npz: no such file"]),
    (lambda d: d, ["is a folder"]),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt",
     ["notes.txt: not a probe file"]),
    (lambda d: np.save(d / "x.npy", np.zeros(3)) or d / "x.npy", ["x.npy: not a probe file"]),
    (lambda d: _npz(d / "plain.npz", x=np.zeros(2)), ["plain.npz: not a probe file"]),
    (lambda d: _npz(d / "v2.npz", {"format": "catsdogs-probe/2"}),
     ["format 'catsdogs-probe/2'", repr(FORMAT)]),
    (lambda d: _npz(d / "bare.npz", {"format": FORMAT}),
     ["bare.npz: malformed probe file (meta.json has no options, data, provenance, machine, "
      "probes)"]),
], ids=["missing", "folder", "text file", "npy", "npz without meta", "other format",
        "malformed"])
def test_an_unusable_file_is_one_line_exit_2_without_tensorflow(tmp_path, tf_blocked,
                                                                make, fragments):
    good = write_fake(tmp_path / "good.npz")
    bad = make(tmp_path)
    result = catsdogs("probe-diff", str(good), str(bad), block_tf=tf_blocked)
    error_line(result, *fragments)
    assert result.stdout == ""


@pytest.mark.parametrize("kwargs, fragments", [
    ({"variants": (("baseline_cnn", "model1"),)}, ["different variants"]),
    ({"seeds": (1,)}, ["different seeds: [0] and [1]"]),
    ({"options": {"steps": 5}}, ["different steps: 2 and 5"]),
    ({"options": {"limit": None}}, ["different limit: 16 and None"]),
    ({"data": {"dataset_fingerprint": "ee28"}},
     ["different data: dataset_fingerprint '7ecc' and 'ee28'"]),
], ids=["variants", "seeds", "steps", "limit", "data"])
def test_probes_not_made_alike_are_refused(command, tmp_path, kwargs, fragments):
    a = write_fake(tmp_path / "a.npz")
    b = write_fake(tmp_path / "b.npz", **kwargs)
    error_line(command("probe-diff", str(a), str(b)), f"{a} and {b}", *fragments)


def test_other_batch_files_are_refused(command, tmp_path):
    a = write_fake(tmp_path / "a.npz")
    probe = fake_probe("B")
    probe.meta["probes"][0]["batch_files"] = ["train/cats/cat.7.jpg"]
    b = tmp_path / "b.npz"
    b.write_bytes(encode(probe.meta, probe.arrays))
    error_line(command("probe-diff", str(a), str(b)), "different batches of images")


def test_exit_codes_through_the_command(command, tmp_path):
    a = write_fake(tmp_path / "a.npz")
    same = command("probe-diff", str(a), str(write_fake(tmp_path / "b.npz")))
    assert same.returncode == 0 and same.stdout.rstrip().endswith("seed 0: identical")
    differs = command("probe-diff", str(a), str(write_fake(tmp_path / "c.npz", changed_from="3")))
    assert differs.returncode == 1
    assert "seed 0: differs at layer 3 max_pooling2d (MaxPooling2D)" in differs.stdout

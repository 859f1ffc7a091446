"""The registry and the four builders: exactly the post's parameter counts, aliases, and
the model4 weights choices (never a silent fallback to random weights)."""

from __future__ import annotations

import pytest

from catsdogs.errors import UsageError, WeightsError
from catsdogs.models import ALIASES, VARIANTS, build_model, canonical_name, parameter_counts

# From the post's model.summary() output (and the issue): at 160x160x3.
EXPECTED_PARAMS = {
    "baseline_cnn": (72_210, 72_210, 0),
    "augmented_cnn": (72_210, 72_210, 0),
    "preprocessed_cnn": (1_641_362, 1_641_362, 0),
    "transfer_mobilenetv2": (2_445_858, 187_874, 2_257_984),
}


def test_registry_order_and_aliases():
    assert VARIANTS == ("baseline_cnn", "augmented_cnn", "preprocessed_cnn",
                        "transfer_mobilenetv2")
    assert [ALIASES[f"model{i}"] for i in range(1, 5)] == list(VARIANTS)
    assert canonical_name("MODEL3") == "preprocessed_cnn"


def test_unknown_variant_lists_the_valid_names():
    with pytest.raises(UsageError) as info:
        canonical_name("model9")
    message = str(info.value)
    assert "'model9'" in message and all(name in message for name in VARIANTS)


@pytest.mark.parametrize("name", VARIANTS[:3])
def test_parameter_counts_match_the_post(name):
    """model4's (a frozen base) is checked with a weights file below."""
    model = build_model(name, weights="none", seed=0)
    counts = parameter_counts(model)
    assert (counts["params_total"], counts["params_trainable"],
            counts["params_non_trainable"]) == EXPECTED_PARAMS[name]


def test_model_is_compiled_as_the_post():
    model = build_model("model1", seed=0)
    assert type(model.optimizer).__name__ == "Adam"
    assert model.loss.from_logits is True
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.001)


def test_model4_without_weights_trains_the_whole_base_from_scratch():
    """--weights none: nothing pretrained to keep, so every base weight trains and
    BatchNorm learns its statistics (only its 34,112 moving averages are not trainable)."""
    import numpy as np

    model = build_model("model4", weights="none", seed=0)
    counts = parameter_counts(model)
    assert (counts["params_trainable"], counts["params_non_trainable"]) == (2_411_746, 34_112)
    moving = [w for w in model.get_layer("mobilenetv2_base").weights
              if "moving_mean" in w.path][0]
    before = np.asarray(moving).copy()
    images = np.random.default_rng(0).integers(0, 256, (4, 160, 160, 3)).astype("uint8")
    model.train_on_batch(images, np.array([0, 1, 0, 1]))
    assert not np.allclose(before, np.asarray(moving))  # BatchNorm ran in training mode


def test_model4_missing_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(WeightsError) as info:
        build_model("model4", weights=str(missing))
    assert str(missing) in str(info.value) and "none" in str(info.value)


def test_model4_imagenet_without_network_says_how_to_supply_weights(tmp_path, monkeypatch):
    """No cached file and no network here: the error must say how to supply the weights."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    from catsdogs.models import resolve_weights

    with pytest.raises(WeightsError) as info:
        resolve_weights("imagenet", download=False)
    assert "--weights" in str(info.value)


def test_model4_loads_a_local_weights_file(tmp_path):
    """A local file is loaded into the base (here: weights we saved ourselves)."""
    from tensorflow import keras

    source = keras.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                            weights=None)
    path = tmp_path / "base.weights.h5"
    source.save_weights(path)
    model = build_model("model4", weights=str(path), seed=0)
    counts = parameter_counts(model)  # a loaded base is frozen: the post's counts
    assert (counts["params_total"], counts["params_trainable"],
            counts["params_non_trainable"]) == EXPECTED_PARAMS["transfer_mobilenetv2"]
    loaded = model.get_layer("mobilenetv2_base").layers[1]
    assert all((a == b).all() for a, b in zip(
        [w.numpy() for w in loaded.weights[:3]], [w.numpy() for w in source.weights[:3]]))


def test_registry_carries_each_variants_input_and_model4s_pinned_weights():
    """The metadata lives on the registry entry: what each variant takes, and the file
    model4 loads (name, URL, size) so it can be checked before training."""
    from catsdogs.constants import IMAGE_SIZE
    from catsdogs.models import get_variant

    for name in VARIANTS:
        assert get_variant(name).input_shape == (*IMAGE_SIZE, 3)
    assert [n for n in VARIANTS if get_variant(n).uses_weights] == ["transfer_mobilenetv2"]
    spec = get_variant("model4").weights
    assert spec.url.endswith("/" + spec.file) and spec.size == 9_406_464
    assert spec.file.endswith(f"_{IMAGE_SIZE[0]}_no_top.h5")


def test_truncated_weights_in_the_cache_are_refused_not_trained_on(tmp_path, monkeypatch):
    """A partial download left in ~/.keras/models would otherwise build model4 from a
    different (or broken) file: its size is checked against the pin first."""
    from catsdogs.models import MOBILENET_V2_160, resolve_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = tmp_path / "keras" / "models" / MOBILENET_V2_160.file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\0" * 1000)
    with pytest.raises(WeightsError, match=r"has 1,000 bytes; expected 9,406,464"):
        resolve_weights("imagenet", download=False)


def test_weights_provenance_records_the_loaded_files_hash_and_size(tmp_path):
    import hashlib

    from catsdogs.models import weights_provenance

    path = tmp_path / "w.h5"
    path.write_bytes(b"weights")
    assert weights_provenance(str(path)) == {
        "weights_sha256": hashlib.sha256(b"weights").hexdigest(), "weights_bytes": 7}
    assert weights_provenance(None) == {"weights_sha256": None, "weights_bytes": None}


def test_all_layers_reaches_into_every_nested_model_of_model4():
    """The XLA check names the layers that refuse jit_compile; it must see inside the
    nested base, augmentation and preprocessor, with public Keras attributes only."""
    from catsdogs.training.train import all_layers

    model = build_model("model4", weights="none", seed=0)
    kinds = {type(layer).__name__ for layer in all_layers(model)}
    names = {layer.name for layer in all_layers(model)}
    assert {"RandomFlip", "RandomRotation", "Dense", "Conv2D"} <= kinds
    assert {"Conv1", "out_relu", "preprocessor", "mobilenetv2_base"} <= names
    found = {id(layer) for layer in all_layers(model)}
    assert all(id(layer) in found for layer in model.layers)

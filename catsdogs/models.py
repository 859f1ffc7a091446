"""The four CNNs of the post, in one registry.

Each builder is a small function that returns an *uncompiled* Keras model with exactly
the post's layers; `build_model(name)` checks the name, builds and compiles as the post
does (Adam at its default learning rate, SparseCategoricalCrossentropy(from_logits=True),
sparse categorical accuracy). The registry (names, aliases, order) imports no
TensorFlow, so option parsing and reports stay fast; builders import Keras when called.
The builders use `keras` alone (catsdogs.backend.keras_module), so the same layers build
on TensorFlow, JAX and PyTorch, with the same parameter counts (a test checks each).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Callable

from catsdogs.backend import keras_module
from catsdogs.constants import IMAGE_SHAPE, IMAGE_SIZE_TEXT, NUM_CLASSES
from catsdogs.errors import UsageError, WeightsError, quoted
from catsdogs.fsutil import file_sha256, keras_cache_dir, path_kind


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """A pretrained weights file a variant loads, pinned so `resolve_weights` can refuse a
    truncated or different file instead of training on it."""

    file: str  # name in the Keras cache (~/.keras/models/)
    url: str
    size: int  # bytes
    sha256: str | None  # None: not pinned (see the entry), the size is still checked


#: The MobileNetV2 base of model4: alpha 1.0, 160x160, no top. The size is the post's
#: download log (9,406,464 bytes). Its sha256 is not pinned: the file cannot be fetched
#: here, Keras' own mobilenet_v2.py loads it without a file_hash, and no public source we
#: could find states one. Pin it once a trusted copy has been hashed.
MOBILENET_V2_160 = PretrainedWeights(
    file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5",
    url=("https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
         "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"),
    size=9_406_464,
    sha256=None,
)
MOBILENET_WEIGHTS_FILE = MOBILENET_V2_160.file  # the name mobilenet_base's errors quote


@dataclasses.dataclass(frozen=True)
class Variant:
    """One registered model: canonical name, the post's alias, its builder, the input it
    takes and, for model4, the pretrained weights it loads."""

    name: str
    alias: str
    description: str
    builder: Callable[..., Any]
    input_shape: tuple[int, int, int] = IMAGE_SHAPE
    weights: PretrainedWeights | None = None

    @property
    def uses_weights(self) -> bool:
        """True for a variant whose build reads a weights file (--weights matters)."""
        return self.weights is not None


_REGISTRY: dict[str, Variant] = {}


def register(name: str, alias: str, description: str, *,
             weights: PretrainedWeights | None = None):
    """Decorator: add a builder to the registry under its name and the post's alias."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = Variant(name, alias, description, builder, weights=weights)
        return builder

    return wrap


def canonical_name(name: str) -> str:
    """The canonical variant name for a canonical name or alias (model1..model4);
    an unknown name is an error that lists the valid ones."""
    key = str(name).strip().lower()
    for variant in _REGISTRY.values():
        if key in (variant.name, variant.alias):
            return variant.name
    valid = ", ".join(f"{v.alias} ({v.name})" for v in _REGISTRY.values())
    raise UsageError(f"unknown variant {name!r}; expected one of: {valid}")


def get_variant(name: str) -> Variant:
    return _REGISTRY[canonical_name(name)]


# ---------------------------------------------------------------- shared blocks


def _seeded(seed: int | None, offset: int) -> int | None:
    """Distinct but reproducible seeds for each random layer."""
    return None if seed is None else seed * 1000 + offset


def data_augmentation(seed: int | None = None):
    """The post's augmentation: RandomFlip('horizontal_and_vertical') + RandomRotation(0.2),
    each with an explicit seed so a run is reproducible."""
    keras = keras_module()

    return keras.Sequential([
        keras.layers.RandomFlip("horizontal_and_vertical", seed=_seeded(seed, 1)),
        keras.layers.RandomRotation(0.2, seed=_seeded(seed, 2)),
    ], name="data_augmentation")


def mobilenet_preprocessor():
    """The post's preprocessor: a small functional model around MobileNetV2's
    preprocess_input (scales [0, 255] to [-1, 1])."""
    keras = keras_module()

    inputs = keras.Input(shape=IMAGE_SHAPE)
    outputs = keras.applications.mobilenet_v2.preprocess_input(inputs)
    return keras.Model(inputs=inputs, outputs=outputs, name="preprocessor")


def _five_conv_block(keras) -> list:
    """model1/model2's hidden layers: five valid 3x3 convs, each followed by 2x2 pooling."""
    layers = []
    for filters in (16, 16, 32, 32, 64):
        layers += [keras.layers.Conv2D(filters, (3, 3), activation="relu"),
                   keras.layers.MaxPooling2D((2, 2))]
    return layers


def _two_conv_block(keras) -> list:
    """model3/model4's head: two same-padded 3x3 convs with pooling."""
    return [keras.layers.Conv2D(16, (3, 3), activation="relu", padding="same"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Conv2D(16, (3, 3), activation="relu", padding="same"),
            keras.layers.MaxPooling2D((2, 2))]


def _classifier(keras, seed: int | None) -> list:
    """The output block every variant shares: Flatten, Dense(64), Dropout(0.2), Dense(2)
    logits (float32 even under mixed precision, so the loss stays stable)."""
    return [keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2, seed=_seeded(seed, 3)),
            keras.layers.Dense(NUM_CLASSES, dtype="float32")]


# ---------------------------------------------------------------- the four variants


@register("baseline_cnn", "model1", "5-conv CNN, no augmentation (the post's model1)")
def baseline_cnn(seed: int | None = None, **_: Any):
    keras = keras_module()

    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE), *_five_conv_block(keras),
                             *_classifier(keras, seed)], name="baseline_cnn")


@register("augmented_cnn", "model2", "model1 + random flip and rotation (the post's model2)")
def augmented_cnn(seed: int | None = None, **_: Any):
    keras = keras_module()

    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE), data_augmentation(seed),
                             *_five_conv_block(keras), *_classifier(keras, seed)],
                            name="augmented_cnn")


@register("preprocessed_cnn", "model3",
          "MobileNetV2 preprocess_input + augmentation + 2-conv head (the post's model3)")
def preprocessed_cnn(seed: int | None = None, **_: Any):
    keras = keras_module()

    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE), mobilenet_preprocessor(),
                             data_augmentation(seed), *_two_conv_block(keras),
                             *_classifier(keras, seed)], name="preprocessed_cnn")


@register("transfer_mobilenetv2", "model4",
          "frozen ImageNet MobileNetV2 base + the model3 head (the post's model4); "
          "--weights none: the base is trained from scratch", weights=MOBILENET_V2_160)
def transfer_mobilenetv2(seed: int | None = None, weights: str = "imagenet", **_: Any):
    """Pretrained weights: the base is frozen and runs in inference mode (BatchNorm keeps
    its ImageNet statistics), as in the post. `weights='none'`: nothing pretrained to
    keep, so the whole base trains, BatchNorm included; a frozen random base would pass
    almost no signal (its features are ~1e-11) and sit at chance by construction."""
    keras = keras_module()

    base = mobilenet_base(weights)
    inputs = keras.Input(shape=IMAGE_SHAPE)
    features = base(inputs) if base.trainable else base(inputs, training=False)
    base_layer = keras.Model(inputs=inputs, outputs=features, name="mobilenetv2_base")
    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE), mobilenet_preprocessor(),
                             data_augmentation(seed), base_layer, *_two_conv_block(keras),
                             *_classifier(keras, seed)], name="transfer_mobilenetv2")


VARIANTS: tuple[str, ...] = tuple(_REGISTRY)
ALIASES: dict[str, str] = {v.alias: v.name for v in _REGISTRY.values()}


# ---------------------------------------------------------------- weights for model4


def _weights_hint() -> str:
    return (f"download {MOBILENET_V2_160.url} and pass --weights PATH, put it in the Keras "
            "cache (~/.keras/models/), or pass --weights none to train the base from scratch")


def resolve_weights(weights: str, *, download: bool = True) -> str | None:
    """The weights file for the MobileNetV2 base, or None ('none': trained from scratch).

    'imagenet' looks in the Keras cache, then downloads with Keras' own get_file, and
    checks the file against the registry's pin (size, and sha256 when known); a failure
    is a WeightsError saying how to supply the file. Never a silent fallback. A file the
    user names is theirs (it may be weights saved from this model) and is not pinned."""
    if weights == "none":
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            kind = path_kind(path)  # a folder or a FIFO is named, not called missing
            found = (f": no file at {quoted(path)}" if kind == "nothing"
                     else f" {quoted(path)}: is {kind}, not a file")
            raise WeightsError(f"--weights{found}; expected a MobileNetV2 ({IMAGE_SIZE_TEXT}, "
                               "no top) weights file, or imagenet or none")
        return str(path)
    spec = MOBILENET_V2_160
    cached = keras_cache_dir() / "models" / spec.file
    if cached.is_file():
        return _verified(str(cached), spec)
    if not download:
        raise WeightsError(f"--weights imagenet: {quoted(cached)} is not there; " + _weights_hint())
    keras = keras_module()

    try:
        path = keras.utils.get_file(spec.file, spec.url, cache_subdir="models",
                                    file_hash=spec.sha256, hash_algorithm="sha256")
    except Exception as exc:  # network errors come in many types; all mean the same here
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise WeightsError(f"--weights imagenet: could not download {spec.url} "
                           f"({reason}); " + _weights_hint()) from None
    return _verified(path, spec)


def _verified(path: str, spec: PretrainedWeights) -> str:
    """`path` if its size (and sha256, when pinned) match `spec`; a truncated download or
    a different file in the cache is refused, since it would train a different model4."""
    size = Path(path).stat().st_size
    if size != spec.size:
        raise WeightsError(f"--weights imagenet: {quoted(path)} has {size:,} bytes; expected "
                           f"{spec.size:,} (delete it to download again, or " + _weights_hint()
                           + ")")
    if spec.sha256 is not None and file_sha256(path) != spec.sha256:
        raise WeightsError(f"--weights imagenet: {quoted(path)} has sha256 {file_sha256(path)}; "
                           f"expected {spec.sha256} (delete it to download again)")
    return path


def mobilenet_base(weights: str = "imagenet"):
    """The MobileNetV2 feature extractor (include_top=False, 160x160x3): frozen when
    weights are loaded, trainable (from scratch) for 'none'."""
    keras = keras_module()

    path = resolve_weights(weights)
    base = keras.applications.MobileNetV2(input_shape=IMAGE_SHAPE, include_top=False,
                                          weights=None)
    if path is not None:
        # Keras warns once per layer it cannot match (100+ lines for a wrong file): held
        # back, so a refusal is one line, and re-emitted only after a clean load.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                base.load_weights(path)
            except Exception as exc:  # h5py, ValueError on shapes, ...: one message for all
                reason = " ".join(str(exc).split()) or type(exc).__name__
                reason = reason if len(reason) <= 200 else reason[:200].rstrip() + "..."
                raise WeightsError(f"--weights: cannot load {quoted(path)} into MobileNetV2 "
                                   f"(160x160, no top): {reason}; expected {MOBILENET_WEIGHTS_FILE}"
                                   f" or weights saved from that model") from None
        partial = [w for w in caught if "freshly-initialized" in str(w.message)]
        if partial:  # loaded "successfully" but some layers kept random weights
            raise WeightsError(f"--weights: {quoted(path)} left {len(partial)} part(s) of "
                               f"MobileNetV2 (160x160, no top) with random weights; expected "
                               "weights of "
                               f"exactly that model")
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    base.trainable = path is None
    return base


def weights_sha256(path: str | None) -> str | None:
    """The hash of the weights file actually loaded, for provenance."""
    return None if path is None else file_sha256(path)


def weights_provenance(path: str | None) -> dict[str, Any]:
    """What the environment records about the weights file loaded: its hash and size, so
    a result can be traced to the exact file even where the registry pins no hash."""
    return {"weights_sha256": weights_sha256(path),
            "weights_bytes": None if path is None else Path(path).stat().st_size}


# ---------------------------------------------------------------- build and compile


def compile_model(model, *, jit_compile: bool = False):
    """Compile as the post: Adam (default learning rate), sparse CE from logits, accuracy."""
    keras = keras_module()

    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)
    return model


def build_model(name: str, *, weights: str = "imagenet", seed: int | None = None,
                jit_compile: bool = False):
    """The compiled model for a canonical name or alias (model1..model4).

    `weights` matters only for model4: 'imagenet', 'none' or a file path."""
    variant = get_variant(name)
    model = variant.builder(seed=seed, weights=weights)
    return compile_model(model, jit_compile=jit_compile)


def parameter_counts(model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts, as model.summary() prints."""
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"params_total": trainable + non_trainable, "params_trainable": trainable,
            "params_non_trainable": non_trainable}

"""Run inside a backend's own interpreter by tests/test_backend_runs.py; prints one JSON line.

    python tests/backend_probe.py params WORK_DIR
        the four models' parameter counts on this process's backend (KERAS_BACKEND):
        models 1-3 and model4 from scratch, and model4 with a base loaded from a weights
        file saved here from a random MobileNetV2 (a loaded base is frozen, as ImageNet's)
    python tests/backend_probe.py nan DATA_DIR RESULTS_DIR
        one model1 run through the runner with Adam(learning_rate=1e12): its loss must
        turn non-finite and the run be recorded as failed, then a normal one as ok
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _backend() -> str:
    from catsdogs.backend import apply_backend

    apply_backend(os.environ["KERAS_BACKEND"])
    import keras

    return keras.config.backend()


def params(work: Path) -> dict:
    """Counts of every variant, the pretrained-style model4 included."""
    backend = _backend()
    import keras

    from catsdogs.models import VARIANTS, build_model, parameter_counts

    base = keras.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                          weights=None)
    weights = work / "base.weights.h5"
    base.save_weights(weights)
    counts = {name: parameter_counts(build_model(name, weights="none", seed=0))
              for name in VARIANTS}
    counts["transfer_mobilenetv2 (weights file)"] = parameter_counts(
        build_model("transfer_mobilenetv2", weights=str(weights), seed=0))
    return {"backend": backend, "counts": counts}


def compile_diverging(keras, model, *, jit_compile=False):
    """The post's compile with Adam(learning_rate=1e12): the weights blow up and the loss
    turns NaN within the first epoch (the fault the NaN guard must catch)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e12),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)
    return model


def nan(data: Path, results: Path) -> dict:
    """A diverging run and a normal one, recorded as `catsdogs run` records them."""
    backend = _backend()
    import keras

    from catsdogs import models
    from catsdogs.options import resolve
    from catsdogs.training import runner

    options = resolve({"data_dir": str(data), "variants": "model1", "seeds": "0,1",
                       "epochs": "1", "batch_size": "4", "results_dir": str(results),
                       "backend": backend}, environ={})
    real_compile, builds = models.compile_model, []

    def compile_model(model, *, jit_compile=False):
        builds.append(model.name)
        if len(builds) == 1:  # seed 0 diverges
            return compile_diverging(keras, model, jit_compile=jit_compile)
        return real_compile(model, jit_compile=jit_compile)

    models.compile_model = compile_model
    prepared = runner.prepare(options)
    result_set = runner.open_result_set(prepared)
    rows = [runner.run_and_record(prepared, result_set, variant, seed)
            for variant, seed in runner.pending(prepared)]
    return {"backend": backend, "rows": [{key: row.get(key) for key in
                                          ("seed", "status", "error", "backend")}
                                         for row in rows]}


if __name__ == "__main__":
    task, *paths = sys.argv[1:]
    result = {"params": params, "nan": nan}[task](*map(Path, paths))
    print("PROBE " + json.dumps(result))

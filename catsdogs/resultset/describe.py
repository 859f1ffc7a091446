"""What a set of runs is: its provenance, its data scope and the warnings every output repeats.

Tables put these in footers and captions, figures in their subtitles, the HTML report in
its header, so a pasted number always travels with what was run: dataset (official or
not), --limit, epochs, seeds, software, device and machine, whether it is a smoke
run, whether a run was contended, and whether model4 was pretrained. Functions here
return data (strings and lists); they do not format for any one output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from catsdogs.constants import SMOKE_EPOCHS
from catsdogs.constants import SMOKE_NOTE as RUN_SMOKE_NOTE
from catsdogs.resultset.comparable import (
    GROUP,
    base_setup,
    duplicate_seeds,
    short_fingerprint,
    unique,
    with_groups,
)
from catsdogs.resultset.machines import contended_warning, machine_lines
from catsdogs.resultset.schema import is_missing

#: The report's warning: the run's own note (constants.SMOKE_NOTE), in capitals to stand out.
SMOKE_NOTE = RUN_SMOKE_NOTE.replace("smoke run", "SMOKE RUN", 1)
#: A coin flip on the balanced test split: the post's "50% baseline", in percent.
CHANCE_PCT = 50.0


def seeds(runs: pd.DataFrame) -> list[int]:
    return [int(seed) for seed in sorted(runs["seed"].dropna().unique())]


def devices(runs: pd.DataFrame) -> list[str]:
    """'cpu', or 'gpu (NVIDIA H100 80GB HBM3, CUDA 12.5, cuDNN 9)' per distinct device."""
    out = []
    for _, row in runs.drop_duplicates(["device", "gpu_name", "cuda_version"]).iterrows():
        device = row["device"] or "unknown"
        extra = [row["gpu_name"]] if row["gpu_name"] else []
        if device == "gpu":
            extra += [f"CUDA {row['cuda_version']}" if row["cuda_version"] else "",
                      f"cuDNN {row['cudnn_version']}" if row["cudnn_version"] else ""]
        extra = [text for text in extra if text]
        out.append(device + (f" ({', '.join(extra)})" if extra else ""))
    return list(dict.fromkeys(out))


def datasets(runs: pd.DataFrame) -> list[str]:
    """'real cats_and_dogs_filtered (official, fingerprint 7ecc68776f75), all images' per
    distinct dataset; synthetic sets say so, and --limit is spelled out."""
    out = []
    for _, row in runs.drop_duplicates(["dataset", "dataset_fingerprint", "limit"]).iterrows():
        known = row["dataset_fingerprint_known"]
        official = {True: "official", False: "NOT the official set"}.get(known, "unchecked")
        kind = {"real": "real cats_and_dogs_filtered",
                "synthetic": "SYNTHETIC images (not photographs)",
                "derived": "DERIVED copy of cats_and_dogs_filtered (re-encoded 160x160 JPEGs)",
                }.get(row["dataset"], row["dataset"])
        text = f"{kind} ({official}, fingerprint {short_fingerprint(row['dataset_fingerprint'])})"
        limit = row["limit"]
        text += ", all images" if is_missing(limit) else \
            f", --limit {int(limit)} images per class per split"
        out.append(text)
    return list(dict.fromkeys(out))


def is_smoke(runs: pd.DataFrame) -> bool:
    """Synthetic data, --limit or fewer than SMOKE_EPOCHS epochs: numbers that test the
    pipeline, not models (the rule options.BenchOptions.smoke applies before a run)."""
    return bool((runs["dataset"] == "synthetic").any() or runs["limit"].notna().any()
                or (runs["epochs"].dropna() < SMOKE_EPOCHS).any())


def base_warnings(runs: pd.DataFrame) -> list[str]:
    """'model4: NOT pretrained: …' for every model4 setup in these runs that is not the
    post's ImageNet base: a reader must never take such a number for transfer learning."""
    found = []
    for _, row in runs.iterrows():
        setup = base_setup(row)
        if setup is not None and setup[0].startswith("NOT"):
            found.append(f"{row['alias'] or row['variant']}: {setup[0]}")
    return list(dict.fromkeys(found))


def warnings(runs: pd.DataFrame, markers: Sequence[str] = ()) -> list[str]:
    """Everything a reader must see before trusting a number, most important first."""
    out = [SMOKE_NOTE] if is_smoke(runs) else []
    out += base_warnings(runs)
    out += contended_warning(runs)
    out += list(markers)
    return out


def verdict_scope(runs: pd.DataFrame) -> list[str]:
    """What a comparison's runs are, before any verdict: one `data:` line (dataset, official
    or not, --limit, epochs; the same on both sides, since check_comparable refuses
    anything else), then every warning of `warnings` as `warning: ...`. A verdict over a
    smoke run or an unpretrained model4 must say so where it is read."""
    return [f"data: {data_scope(runs)}"] + [f"warning: {text}" for text in warnings(runs)]


def epochs_text(runs: pd.DataFrame) -> str:
    """The distinct epoch counts of these runs, e.g. '20' (empty when none is known)."""
    return ", ".join(str(e) for e in sorted(runs["epochs"].dropna().unique()))


def data_scope(runs: pd.DataFrame) -> str:
    """'<dataset, official or not, --limit>; <epochs> epochs': what was trained on, the
    start of every scope line."""
    return f"{'; '.join(datasets(runs))}; {epochs_text(runs) or '?'} epochs"


#: How a backend is named where people read it.
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def backends(runs: pd.DataFrame) -> list[str]:
    """'JAX 0.10.2 (jaxlib 0.10.2)', 'PyTorch 2.13.0+cpu' per distinct backend other
    than TensorFlow (whose version the TensorFlow item already names); [] for TF only."""
    if "backend" not in runs.columns:
        return []
    out = []
    for _, row in runs.drop_duplicates(["backend", "jax_version", "jaxlib_version",
                                        "torch_version"]).iterrows():
        backend = row["backend"]
        if is_missing(backend) or backend == "tensorflow":
            continue
        version = row.get(f"{backend}_version")
        text = f"{BACKEND_NAMES.get(backend, backend)} {version or '?'}"
        if backend == "jax" and row.get("jaxlib_version"):
            text += f" (jaxlib {row['jaxlib_version']})"
        out.append(text)
    return list(dict.fromkeys(out))


def software_text(runs: pd.DataFrame) -> str:
    """'TF 2.21.0, Keras 3.15.1', and for runs on another backend 'Keras 3.15.1 on JAX
    0.10.2 (jaxlib 0.10.2)': a caption says the backend whenever it is not TensorFlow."""
    keras = ", ".join(unique(runs, "keras_version")) or "?"
    tf = ", ".join(unique(runs, "tf_version"))
    others = backends(runs)
    if not others:
        return f"TF {tf or '?'}, Keras {keras}"
    return (f"TF {tf}, " if tf else "") + f"Keras {keras} on {', '.join(others)}"


def scope_line(runs: pd.DataFrame) -> str:
    """One line of data scope for a figure subtitle: dataset, limit, epochs, seeds,
    software and device."""
    seed_list = seeds(runs)
    return (f"{data_scope(runs)}; "
            f"seed{'s' if len(seed_list) != 1 else ''} {', '.join(map(str, seed_list))}; "
            f"{software_text(runs)}, {'; '.join(devices(runs))}")


def failures(runs: pd.DataFrame, limit: int = 3) -> list[str]:
    failed = runs[runs["status"] != "ok"]
    lines = [f"{row['variant']} seed {row['seed']}: {row['error'] or 'no error recorded'}"
             for _, row in failed.head(limit).iterrows()]
    if len(failed) > limit:
        lines.append(f"... and {len(failed) - limit} more (see runs.csv)")
    return lines


def duplicates(runs: pd.DataFrame) -> list[str]:
    """Seeds recorded ok more than once in one table row, e.g. the same shard run twice."""
    return [f"{group} seed {seed} x{n}"
            for (group, seed), n in sorted(duplicate_seeds(with_groups(runs), GROUP).items())]


def provenance_items(runs: pd.DataFrame, environments: Sequence[dict[str, Any]],
               markers: Sequence[str] = (), left_out: Sequence[str] = ()
               ) -> list[tuple[str, str]]:
    """(label, text) pairs: where the numbers came from, and what to be careful with.
    `left_out` names ok runs whose accuracy was NaN (they are not in n or the means)."""
    commits = [commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
               for commit in unique(runs, "git_commit", environments)]
    flags = [flag for flag in ("deterministic", "mixed_precision", "xla")
             if runs[flag].map(lambda value: value is True).any()]
    items = [("warning", text) for text in warnings(runs, markers)]
    if backends(runs):
        items.append(("Keras backend", ", ".join(
            [BACKEND_NAMES["tensorflow"]] * bool(unique(runs, "tf_version")) + backends(runs))))
    items += [
        ("TensorFlow", ", ".join(unique(runs, "tf_version", environments))
         or ("not used" if backends(runs) else "unknown")),
        ("Keras", ", ".join(unique(runs, "keras_version", environments)) or "unknown"),
        ("Python", ", ".join(unique(runs, "python_version", environments)) or "unknown"),
        ("device", "; ".join(devices(runs)) or "unknown"),
        ("machine", "; ".join(machine_lines(runs))),
        ("dataset", "; ".join(datasets(runs))),
        ("seeds", ", ".join(map(str, seeds(runs)))),
        ("epochs", epochs_text(runs)),
        ("batch size", ", ".join(str(b) for b in sorted(runs["batch_size"].dropna().unique()))),
        ("options on", (", ".join(flags) or "none (float32, no XLA, non-deterministic ops)")
         + ("; on JAX every step is XLA-compiled (jax.jit) whatever --xla says"
            if "jax" in unique(runs, "backend") else "")),
        ("git commit", ", ".join(commits) or "unknown"),
        ("hosts", ", ".join(unique(runs, "host", environments)) or "unknown"),
        ("result sets", ", ".join(unique(runs, "result_set")
                                  or [env.get("result_set", "") for env in environments])),
        ("uncertainty", "mean ± half-width of the 95% t-interval over seeds (none for n=1); "
                        "step time: median (min–max) over seeds"),
        (f"{CHANCE_PCT:.0f}% baseline", "chance: a coin flip on the balanced test split"),
    ]
    failed, recorded_twice = failures(runs), duplicates(runs)
    if failed:
        items.append(("failed runs (not in the numbers)", "; ".join(failed)))
    if left_out:
        items.append(("left out of n and the means (NaN accuracy)", "; ".join(left_out)))
    if recorded_twice:
        items.append(("recorded more than once (each counted)", ", ".join(recorded_twice)))
    return items

"""`catsdogs probe-diff A B`: whether two probes are identical, and where they first part.

Per (variant, seed) the records are compared in the order the computation runs: the
decoded input batch; then layer by layer the initial weights and the forward output (the
first layer where either differs is where the change enters); the loss on the batch; the
gradients, layer by layer; the data order and the losses of the training steps; the weights
after them. Equal digests mean bit-identical arrays; otherwise the stored samples measure
how much: the largest absolute and relative difference and the fraction of values changed.
Two probes that were not made alike (format, variants, seeds, options, data) are not
compared at all: one UsageError line, exit 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from catsdogs.attribution.fileformat import ProbeFile
from catsdogs.errors import UsageError

#: The options two probes must share (the rest, e.g. --deterministic, only get a note).
SHARED_OPTIONS = ("variants", "seeds", "batch_size", "limit", "steps", "weights", "synthetic")
#: Machine facts that make bit-identity not expected when they differ.
MACHINE_KEYS = ("cpu_model", "cpu_flags_sha256", "cpu_count", "architecture", "system")
KIND_WORDS = {"initial_weights": "initial weights", "forward": "forward output",
              "gradient": "gradient", "final_weights": "weights after the steps"}


@dataclasses.dataclass(frozen=True)
class Change:
    """How one recorded array differs between A and B (on its stored sample)."""

    compared: int  # values compared (the sample; every value when `exact`)
    changed: int
    exact: bool  # the sample is the whole array
    max_abs: float | None = None
    max_rel: float | None = None
    shapes: tuple[list, list] | None = None  # set when the shapes differ

    @property
    def fraction(self) -> float:
        return self.changed / self.compared if self.compared else 1.0

    def text(self) -> str:
        if self.shapes is not None:
            return f"shape {self.shapes[0]} -> {self.shapes[1]}"
        where = f"of all {self.compared}" if self.exact else f"of {self.compared} sampled"
        if not self.changed:
            return (f"bytes differ, but none {where} values does (the difference lies "
                    "outside the sample)")
        return (f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"{100 * self.fraction:.1f}% {where} values changed")


def compare_arrays(record_a: dict | None, sample_a: np.ndarray | None,
                   record_b: dict | None, sample_b: np.ndarray | None) -> Change | None:
    """None when both records are absent or bit-identical, else how they differ. The
    relative difference of a value is |a - b| / max(|a|, |b|); NaN equals NaN here."""
    if record_a is None and record_b is None:
        return None
    if record_a is None or record_b is None:
        return Change(0, 1, True, shapes=(record_a and record_a["shape"],
                                          record_b and record_b["shape"]))
    if record_a["sha256"] == record_b["sha256"] and record_a["shape"] == record_b["shape"]:
        return None
    if record_a["shape"] != record_b["shape"]:
        return Change(0, 1, True, shapes=(record_a["shape"], record_b["shape"]))
    a = np.asarray(sample_a, np.float64)
    b = np.asarray(sample_b, np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    exact = a.size == int(np.prod(record_a["shape"]))
    if same.all():
        return Change(int(a.size), 0, exact)
    delta = np.abs(a - b)[~same]
    scale = np.maximum(np.abs(a), np.abs(b))[~same]
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(scale > 0, delta / scale, np.inf)
    return Change(int(a.size), int((~same).sum()), exact, float(np.nanmax(delta)),
                  float(np.nanmax(relative)))


def layer_label(layer: dict[str, Any]) -> str:
    """`1.1 random_rotation (RandomRotation)`: position, Keras name, class."""
    return f"{layer['index']} {layer['name']} ({layer['class']})"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One place where A and B part: what (a LAYER_KINDS kind, 'input', 'loss', 'step',
    'batches', 'structure'), at which layer or step, and how much."""

    kind: str
    where: str
    change: Change | None = None
    detail: str = ""

    def text(self) -> str:
        if self.kind in KIND_WORDS:
            verb = "differ" if "weights" in self.kind else "differs"
            return f"{KIND_WORDS[self.kind]} first {verb} at layer {self.where}: " \
                   f"{self.change.text()}"
        if self.kind == "input":
            return f"the decoded input batch differs: {self.change.text()}"
        return f"{self.where}{': ' + self.detail if self.detail else ''}"


@dataclasses.dataclass(frozen=True)
class VariantDiff:
    """The comparison of one (variant, seed): every place where it first differs, in the
    order of the computation; identical when there is none."""

    variant: str
    alias: str
    seed: int
    findings: tuple[Finding, ...]

    @property
    def identical(self) -> bool:
        return not self.findings

    def headline(self) -> str:
        """`identical`, or where the change enters (the first finding)."""
        if self.identical:
            return "identical"
        first = self.findings[0]
        if first.kind in ("initial_weights", "forward"):
            return f"differs at layer {first.where} ({KIND_WORDS[first.kind]}: " \
                   f"{first.change.text()})"
        return f"differs: {first.text()}"

    def label(self) -> str:
        return f"{self.alias} ({self.variant}) seed {self.seed}"


def _first_layer(kind: str, a: ProbeFile, b: ProbeFile, layers_a: list, layers_b: list
                 ) -> tuple[int, Finding] | None:
    """(position, finding) of the first layer whose record of `kind` differs."""
    for position, (layer_a, layer_b) in enumerate(zip(layers_a, layers_b)):
        record_a, record_b = layer_a.get(kind), layer_b.get(kind)
        change = compare_arrays(record_a, record_a and a.sample(record_a),
                                record_b, record_b and b.sample(record_b))
        if change is not None:
            return position, Finding(kind, layer_label(layer_b), change)
    return None


def _entry_points(a: ProbeFile, b: ProbeFile, layers_a: list, layers_b: list
                  ) -> list[Finding]:
    """The first layer whose initial weights differ and the first whose forward output
    differs, earliest first (weights first at the same layer): where the change enters."""
    found = [hit for hit in (_first_layer("initial_weights", a, b, layers_a, layers_b),
                             _first_layer("forward", a, b, layers_a, layers_b)) if hit]
    return [finding for _, finding in sorted(found, key=lambda hit: hit[0])]


def _structure(layers_a: list, layers_b: list) -> tuple[int, Finding | None]:
    """How many leading layers match by position and class, and a finding if not all."""
    keys_a = [(layer["index"], layer["class"]) for layer in layers_a]
    keys_b = [(layer["index"], layer["class"]) for layer in layers_b]
    common = 0
    while common < min(len(keys_a), len(keys_b)) and keys_a[common] == keys_b[common]:
        common += 1
    if keys_a == keys_b:
        return common, None
    shown = [", ".join(f"{i} {c}" for i, c in keys[common:common + 2]) or "nothing"
             for keys in (keys_a, keys_b)]
    return common, Finding("structure", f"the layers differ from position {common}",
                           detail=f"A has {shown[0]}, B has {shown[1]}")


def _steps(steps_a: dict, steps_b: dict) -> Finding | None:
    """The first training step whose batch (data order) or reported loss differs."""
    for step, (batch_a, batch_b) in enumerate(zip(steps_a["batches"], steps_b["batches"]), 1):
        if batch_a != batch_b:
            return Finding("batches", f"the training batch of step {step} differs",
                           detail="the data order changed, not only the arithmetic")
    for step, (loss_a, loss_b) in enumerate(zip(steps_a["losses"], steps_b["losses"]), 1):
        if loss_a != loss_b:
            return Finding("step", f"training first differs at step {step} of "
                           f"{steps_a['done']}", detail=f"loss {loss_a!r} -> {loss_b!r}")
    return None


def diff_entries(a: ProbeFile, b: ProbeFile, entry_a: dict, entry_b: dict) -> VariantDiff:
    """Every first difference of one (variant, seed), in the order of the computation."""
    findings: list[Finding] = []
    input_change = compare_arrays(entry_a["input"], a.sample(entry_a["input"]),
                                  entry_b["input"], b.sample(entry_b["input"]))
    if input_change:
        findings.append(Finding("input", "input", input_change))
    common, structure = _structure(entry_a["layers"], entry_b["layers"])
    layers_a, layers_b = entry_a["layers"][:common], entry_b["layers"][:common]
    findings += _entry_points(a, b, layers_a, layers_b)
    findings += [structure] if structure else []
    if entry_a["loss"] != entry_b["loss"]:
        findings.append(Finding("loss", "the loss on the batch differs",
                                detail=f"{entry_a['loss']!r} -> {entry_b['loss']!r}"))
    gradient = _first_layer("gradient", a, b, layers_a, layers_b)
    final = _first_layer("final_weights", a, b, layers_a, layers_b)
    later = (gradient and gradient[1], _steps(entry_a["steps"], entry_b["steps"]),
             final and final[1])
    findings += [found for found in later if found]
    return VariantDiff(entry_b["variant"], entry_b["alias"], entry_b["seed"], tuple(findings))


# ---------------------------------------------------------------- can A and B be compared


def _options_line(meta: dict) -> str:
    options = meta["options"]
    return ", ".join(f"{key}={options.get(key)!r}" for key in SHARED_OPTIONS)


def check_comparable(a: ProbeFile, b: ProbeFile) -> None:
    """Refuse (one line, exit 2) two probes that were not made alike: other variants or
    seeds, other probe options, other data. Comparing them would name a 'difference' that
    is only the experiment's."""
    for key in SHARED_OPTIONS:
        value_a, value_b = a.meta["options"].get(key), b.meta["options"].get(key)
        if value_a != value_b:
            raise UsageError(f"{a.shown} and {b.shown} were probed with different {key}: "
                             f"{value_a!r} and {value_b!r}; expected the same (probe both "
                             f"with the same options)")
    for key in ("dataset", "dataset_fingerprint"):
        value_a, value_b = a.meta["data"].get(key), b.meta["data"].get(key)
        if value_a != value_b:
            raise UsageError(f"{a.shown} and {b.shown} were probed on different data: "
                             f"{key} {value_a!r} and {value_b!r}; expected the same images")
    keys_a = [(e["variant"], e["seed"]) for e in a.entries]
    keys_b = [(e["variant"], e["seed"]) for e in b.entries]
    if keys_a != keys_b:
        raise UsageError(f"{a.shown} and {b.shown} hold different (variant, seed) probes: "
                         f"{keys_a!r} and {keys_b!r}; expected the same")
    for entry_a, entry_b in zip(a.entries, b.entries):
        if entry_a.get("batch_files") != entry_b.get("batch_files"):
            raise UsageError(f"{a.shown} and {b.shown} probed {entry_a['variant']} on "
                             "different batches of images (files differ); expected the same")


def machine_notes(a: ProbeFile, b: ProbeFile) -> list[str]:
    """What the reader must know before reading a difference: other machines (then
    bit-identity is not expected), another device, other packages."""
    notes = []
    machine_a, machine_b = a.meta["machine"], b.meta["machine"]
    differ = [key for key in MACHINE_KEYS if machine_a.get(key) != machine_b.get(key)]
    x, y = ((probe.meta["provenance"].get("machine") or {}).get("fingerprint")
            for probe in (a, b))  # training.machine's fingerprint, in the session's provenance
    if x is not None and y is not None and x != y:
        differ.append(f"machine_fingerprint {x!r} vs {y!r}")
    if a.meta["provenance"].get("device") != b.meta["provenance"].get("device"):
        differ.append("device {!r} vs {!r}".format(a.meta["provenance"].get("device"),
                                                     b.meta["provenance"].get("device")))
    if differ:
        words = []
        for key in differ:
            if key == "cpu_flags_sha256":
                only_a = sorted(set(machine_a.get("cpu_flags", [])) -
                                set(machine_b.get("cpu_flags", [])))
                only_b = sorted(set(machine_b.get("cpu_flags", [])) -
                                set(machine_a.get("cpu_flags", [])))
                words.append(f"CPU flags only in A: {' '.join(only_a[:6]) or '-'}; "
                             f"only in B: {' '.join(only_b[:6]) or '-'}")
            elif key in MACHINE_KEYS:
                words.append(f"{key} {machine_a.get(key)!r} vs {machine_b.get(key)!r}")
            else:
                words.append(key)
        notes.append("note: A and B come from different machines (" + "; ".join(words) +
                     "): bit-identity is not expected there, so a difference may be the "
                     "machine's, not the software's")
    packages_a = a.meta["provenance"].get("packages", {})
    packages_b = b.meta["provenance"].get("packages", {})
    names = sorted(name for name in set(packages_a) | set(packages_b)
                   if packages_a.get(name) != packages_b.get(name))
    both = [name for name in names if name in packages_a and name in packages_b]
    one_side = [name for name in names if name not in both]
    if both:
        notes.append("packages that differ: " + ", ".join(
            f"{name} {packages_a[name]} -> {packages_b[name]}" for name in both))
    if one_side:
        notes.append(f"installed on one side only: {len(one_side)} package(s) ("
                     + ", ".join(one_side[:8]) + (", ..." if len(one_side) > 8 else "") + ")")
    if a.meta["options"].get("deterministic") != b.meta["options"].get("deterministic"):
        notes.append("note: one side ran with --deterministic, the other without")
    return notes


@dataclasses.dataclass(frozen=True)
class ProbeDiff:
    """The whole comparison: the two files, the notes, and one VariantDiff per entry."""

    a: ProbeFile
    b: ProbeFile
    notes: tuple[str, ...]
    variants: tuple[VariantDiff, ...]

    @property
    def identical(self) -> bool:
        return all(variant.identical for variant in self.variants)

    @property
    def exit_code(self) -> int:
        return 0 if self.identical else 1

    def text(self) -> str:
        lines = [f"{name}: {probe.shown} ({_software(probe)})"
                 for name, probe in (("A", self.a), ("B", self.b))]
        lines += list(self.notes)
        for variant in self.variants:
            lines.append(f"{variant.label()}: {variant.headline()}")
            lines += [f"  {finding.text()}" for finding in variant.findings[1:]]
        return "\n".join(lines)


def _software(probe: ProbeFile) -> str:
    provenance = probe.meta["provenance"]
    return (f"TF {provenance.get('tf_version', '?')}, Keras "
            f"{provenance.get('keras_version', '?')}, {provenance.get('device', '?')} on "
            f"{provenance.get('host', '?')}")


def diff_probes(a: ProbeFile, b: ProbeFile) -> ProbeDiff:
    """Compare two probe files (refused with one line if they were not made alike)."""
    check_comparable(a, b)
    variants = tuple(diff_entries(a, b, entry_a, entry_b)
                     for entry_a, entry_b in zip(a.entries, b.entries))
    return ProbeDiff(a, b, tuple(machine_notes(a, b)), variants)


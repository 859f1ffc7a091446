"""Accuracy and step time per variant across TensorFlow releases, and where they changed.

`catsdogs trend SET [SET ...]` groups result sets by TF version, orders the releases as
versions (2.9 < 2.10 < 2.21.0rc1 < 2.21.0), and compares each release with the one
before it exactly as `compare` does: identity first, then the statistics of
`catsdogs.stats`, with one Holm correction over every test of the trend. The first
release whose comparison with its predecessor is a regression or an improvement is the
step (one release: no trend). catsdogs.verdicts.output renders it (text, JSON, trend.png/.pdf).

The Keras backend is one more dimension: a run on JAX or PyTorch belongs to the release
`jax <version>` or `torch <version>`, ordered after every TensorFlow release (then by
version), so a trend over sets of several backends compares each with its neighbour;
between backends identity says "not comparable" and only the statistics apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from catsdogs.backend import BACKENDS, TENSORFLOW, recorded_backend
from catsdogs.errors import UsageError
from catsdogs.resultset.comparable import (
    check_comparable,
    duplicate_seeds,
    ok_runs,
    variant_order,
)
from catsdogs.resultset.describe import verdict_scope
from catsdogs.resultset.load import load_result_sets
from catsdogs.resultset.machines import run_keys, scope_warnings, uncontended
from catsdogs.resultset.schema import is_missing
from catsdogs.verdicts.compare import (
    ACCURACY,
    ALPHA,
    MAX_SLOWDOWN,
    MIN_CHANGE,
    STEP,
    VariantResult,
    accuracy_estimate,
    assess,
    check_parameters,
    decide,
    step_estimate,
    thresholds,
)
from catsdogs.verdicts.side import Side, with_lines


def version_key(version: str) -> tuple:
    """Order TF versions as releases: 2.9 < 2.10 < 2.21.0rc1 < 2.21.0; unparseable last."""
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(str(version)), "")
    except InvalidVersion:
        return (1, Version("0"), str(version))


def release_label(run: pd.Series) -> str:
    """A run's release: its TF version on TensorFlow ('2.21.0', as before backends), else
    '<backend> <version>' ('jax 0.10.2', 'torch 2.13.0+cpu')."""
    backend = recorded_backend(run.get("backend"))
    backend = backend if backend in BACKENDS else TENSORFLOW  # a name we do not know: by TF
    version = run.get("tf_version" if backend == TENSORFLOW else f"{backend}_version")
    version = "unknown" if is_missing(version) or version == "" else str(version)
    return version if backend == TENSORFLOW else f"{backend} {version}"


def _split(label: str) -> tuple[str, str]:
    backend, _, version = label.partition(" ")
    return (backend, version) if backend in BACKENDS[1:] and version else (TENSORFLOW, label)


def release_key(label: str) -> tuple:
    """TensorFlow releases first, then JAX's, then PyTorch's, each in version order."""
    backend, version = _split(label)
    return (BACKENDS.index(backend), version_key(version))


def release_name(label: str) -> str:
    """How a release is named in text: 'TF 2.21.0', 'jax 0.10.2'."""
    return f"TF {label}" if _split(label)[0] == TENSORFLOW else label


@dataclasses.dataclass
class Release:
    """The runs of one TF version (one or more result sets)."""

    version: str
    side: Side

    def info(self) -> dict[str, Any]:
        return self.side.info()


@dataclasses.dataclass
class Step:
    """One release against the one before it."""

    before: str
    after: str
    results: list[VariantResult]


@dataclasses.dataclass
class Trend:
    releases: list[Release]
    steps: list[Step]
    alpha: float
    min_change: float
    max_slowdown: float
    tests: int
    duplicates: list[Duplicate]
    notes: list[str]
    scope: list[str] = dataclasses.field(default_factory=list)  # describe.verdict_scope

    def first_change(self, variant: str) -> tuple[str, list[str]] | None:
        """(release, what changed) of the first regression or improvement, else None."""
        for step in self.steps:
            for result in step.results:
                changed = [f"{m.metric.replace('_', ' ')} {m.verdict}" for m in result.metrics
                           if result.variant == variant
                           and m.verdict in ("regression", "improvement")]
                if changed:
                    return step.after, changed
        return None

    def numerics_changes(self, variant: str) -> list[tuple[str, Any]]:
        """(release, identity) where the variant's paired runs stopped being identical."""
        return [(step.after, result.identity) for step in self.steps
                for result in step.results
                if result.variant == variant and result.identity.status == "diverged"]

    def numerics_changed(self, variant: str) -> list[str]:
        """Releases where the variant's paired runs stopped being identical, as text."""
        return [f"{after} ({identity.text()})" for after, identity
                in self.numerics_changes(variant)]


@dataclasses.dataclass(frozen=True)
class Duplicate:
    """A variant and seed recorded ok more than once in one release."""

    variant: str
    seed: int
    count: int
    version: str

    def text(self) -> str:
        return f"{self.variant} seed {self.seed} x{self.count} in {release_name(self.version)}"


def _duplicates(release: Release) -> list[Duplicate]:
    return [Duplicate(variant, seed, n, release.version)
            for (variant, seed), n in sorted(duplicate_seeds(release.side.runs).items())]


def build_trend(result_sets: Sequence[Path], *, alpha: float = ALPHA,
                min_change: float = MIN_CHANGE, max_slowdown: float = MAX_SLOWDOWN,
                allow_mixed: bool = False, allow_duplicates: bool = False,
                allow_different_machines: bool = False) -> Trend:
    """Load (the loader checks step times against epochs.csv), check each variant and
    seed once per release (unless allow_duplicates, then flagged), and compare
    neighbouring releases."""
    check_parameters(alpha, min_change, max_slowdown)
    runs, epochs, _ = load_result_sets(list(result_sets))
    runs = with_lines(runs)
    markers = check_comparable(runs, allow_mixed)
    if ok_runs(runs).empty:
        raise UsageError("trend: no ok runs in the given result sets; expected at least one "
                         "finished run")
    labels = runs.apply(release_label, axis=1)
    releases = []
    for version in sorted(labels.unique(), key=release_key):
        side = Side.from_frames(release_name(version), runs[labels == version], epochs)
        if not allow_duplicates:
            side.check_duplicates()
        releases.append(Release(version, side))
    limits = thresholds(min_change, max_slowdown)
    steps = []
    for before, after in zip(releases, releases[1:]):
        shared = [v for v in variant_order(before.side.runs["variant"])
                  if len(before.side.ok(v)) and len(after.side.ok(v))]
        steps.append(Step(before.version, after.version,
                          [assess(v, before.side, after.side, limits, allow_different_machines)
                           for v in shared]))
    tests = decide([result for step in steps for result in step.results], alpha)
    duplicates = [text for release in releases for text in _duplicates(release)]
    results = [result for step in steps for result in step.results]
    return Trend(releases, steps, alpha, min_change, max_slowdown, tests, duplicates,
                 markers + _not_comparable(steps),
                 verdict_scope(runs) + scope_warnings(result.speed for result in results))


def _not_comparable(steps: list[Step]) -> list[str]:
    """'<variant> step time TF a -> b: not comparable: ...' for each step-time verdict the
    machine rule withheld (the table shows only the word)."""
    return [f"{result.variant} step time TF {step.before} -> {step.after}: {result.speed.reason}"
            for step in steps for result in step.results
            if result.speed is not None and not result.speed.allowed]


def trend_rows(trend: Trend) -> list[dict[str, Any]]:
    """Per variant and release: n, accuracy, step time, and the verdicts against the
    release before (numbers, for the table, the plot and the JSON). The step time is over
    the uncontended runs only, as the step-time verdicts are (`step_contended` counts the
    runs left out), so the figure beside a verdict is the one it was decided on."""
    against = {(step.after, result.variant): result for step in trend.steps
               for result in step.results}
    flagged = {(dup.variant, dup.version) for dup in trend.duplicates}
    rows = []
    for variant in variant_order(pd.concat([r.side.runs["variant"] for r in trend.releases])):
        for release in trend.releases:
            ok = release.side.ok(variant)
            if ok.empty:
                continue
            result = against.get((release.version, variant))
            verdicts = {m.metric: m.verdict for m in result.metrics} if result else {}
            timed = uncontended(ok)
            rows.append({
                "variant": variant, "release": release.version,
                "backend": _split(release.version)[0],
                "keras_version": ", ".join(release.info()["keras_versions"]),
                "n": len(ok), "duplicate": (variant, release.version) in flagged,
                "accuracy": accuracy_estimate(release.side, variant),
                "step": step_estimate(release.side, variant, run_keys(timed)),
                "step_contended": len(ok) - len(timed),
                "numerics": result.identity.text() if result else "",
                "accuracy_verdict": verdicts.get(ACCURACY, ""),
                "step_verdict": verdicts.get(STEP, "")})
    return rows

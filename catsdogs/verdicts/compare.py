"""Regression verdicts between two groups of result sets: identity first, then statistics.

`catsdogs compare BASE CANDIDATE` is a CI gate. Per variant it first pairs runs by
(variant, seed, configuration) and compares their histories exactly
(catsdogs.verdicts.identity); then
it judges test accuracy (paired by seed when both sides hold the same seeds) and step
time (unpaired) with the rule of `catsdogs.stats` (regression, improvement, unchanged or
inconclusive; docs/verdicts.md says it in plain words). Sides load in catsdogs.verdicts.side.
Accuracy of a variant whose paired runs are identical is `identical`: no test needed.

This module loads, checks and decides, returning dataclasses; catsdogs.verdicts.output
renders them (text, HTML, JSON). Exit codes: 1 on any regression, else 0; with strict, 3 when
something is inconclusive or not comparable; 2 (UsageError) for unusable input. Step
times are judged only between runs of one machine, contended runs left out
(catsdogs.resultset.machines decides; --allow-different-machines opts in).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from catsdogs import stats
from catsdogs.errors import UsageError
from catsdogs.options import VERDICT_LIMITS
from catsdogs.resultset.comparable import check_comparable, duplicate_seeds, unique, variant_order
from catsdogs.resultset.describe import verdict_scope
from catsdogs.resultset.load import SOURCE
from catsdogs.resultset.machines import NOT_COMPARABLE, SpeedRule, scope_warnings, speed_rule
from catsdogs.verdicts.identity import Identity, identity, seed_pairs
from catsdogs.verdicts.side import Side

JSON_SCHEMA = "catsdogs-verdicts/1"
ACCURACY, STEP = "test_accuracy", "step_time"
#: Settings that may differ between sides but change what a step costs.
_SETTINGS_NOTED = ("backend", "device", "gpu_name", "batch_size", "mixed_precision", "xla",
                   "deterministic", "strategy", "replicas")


# ---------------------------------------------------------------- verdicts


@dataclasses.dataclass(frozen=True)
class Metric:
    """How one metric is tested and shown. Differences live on the test's scale (points;
    log step time); `shown` maps a mean or a change to the unit people read."""

    name: str
    worse_when: int  # -1: lower is worse (accuracy); +1: higher is worse (step time)
    unit: str

    def shown(self, value: float) -> float:
        return math.exp(value) if self.name == STEP else value

    def describe(self, change: float) -> str:
        return f"x{math.exp(change):.3f}" if self.name == STEP else f"{change:+.1f} pts"


METRICS = {ACCURACY: Metric(ACCURACY, -1, "percentage points"),
           STEP: Metric(STEP, +1, "ratio candidate/base (means in ms)")}


@dataclasses.dataclass
class MetricVerdict:
    """The verdict on one metric of one variant, with every number behind it."""

    variant: str
    metric: str
    base: stats.SideEstimate | None
    candidate: stats.SideEstimate | None
    contrast: stats.Contrast | None
    threshold: float
    difference: stats.Difference | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # why this analysis
    verdict: str = ""
    reasons: list[str] = dataclasses.field(default_factory=list)
    p_adjusted: float | None = None
    judgement: stats.Judgement | None = None


@dataclasses.dataclass
class VariantResult:
    variant: str
    identity: Identity
    metrics: list[MetricVerdict]
    speed: SpeedRule | None = None  # resultset.machines: whether step times compare


@dataclasses.dataclass
class Comparison:
    """Everything `compare` decided; `exit_code` turns it into the CI's answer."""

    base: dict[str, Any]
    candidate: dict[str, Any]
    alpha: float
    min_change: float
    max_slowdown: float
    tests: int
    results: list[VariantResult]
    lost: list[str]  # variants whose candidate runs all failed: regressions
    not_compared: list[str]
    notes: list[str]
    scope: list[str] = dataclasses.field(default_factory=list)  # describe.verdict_scope

    def verdicts(self) -> list[MetricVerdict]:
        return [m for result in self.results for m in result.metrics]

    def count(self, verdict: str) -> int:
        return sum(m.verdict == verdict for m in self.verdicts())

    def exit_code(self, strict: bool = False) -> int:
        if self.lost or self.count("regression"):
            return 1
        return 3 if strict and (self.count("inconclusive") or self.count(NOT_COMPARABLE)) else 0


def thresholds(min_change: float, max_slowdown: float) -> dict[str, float]:
    """Each metric's threshold on its test scale."""
    return {ACCURACY: min_change, STEP: math.log1p(max_slowdown / 100)}


def _accuracy_side(runs: pd.DataFrame) -> stats.SideEstimate | None:
    runs = runs.dropna(subset=["test_correct", "n_test"])
    if runs.empty:
        return None
    return stats.accuracy_side(runs["test_correct"].astype(int), runs["n_test"].astype(int))


def accuracy_estimate(side: Side, variant: str) -> stats.SideEstimate | None:
    """The variant's ok runs as an accuracy side (None without any)."""
    return _accuracy_side(side.ok(variant))


def step_estimate(side: Side, variant: str, keep: set[tuple[str, str]] | None = None
                  ) -> stats.SideEstimate | None:
    """The variant's ok runs with step times as a step-time side (None without any); with
    `keep`, only those runs ((source, run_id), as machines.speed_rule chose them)."""
    samples = [m for _, run in side.ok(variant).iterrows()
               if (keep is None or (str(run[SOURCE]), str(run["run_id"])) in keep)
               and len(m := side.step_medians(run))]
    return stats.step_side(samples) if samples else None


def _scored(run: pd.Series) -> bool:
    return not (pd.isna(run["test_correct"]) or pd.isna(run["n_test"]))


def _has_duplicate_seed(side: Side, variant: str) -> bool:
    return bool(duplicate_seeds(side.ok(variant)))


def accuracy_contrast(variant: str, base: Side, candidate: Side) -> MetricVerdict:
    """Accuracy paired by seed when at least MIN_SEEDS seeds ran in the same configuration
    on both sides (stats.paired_accuracy says why pairing is sound; the means shown are
    then over the paired runs), else unpaired over all ok runs. The notes say which and
    why; seeds on one side only are named as left out of a paired analysis."""
    b_all, c_all = accuracy_estimate(base, variant), accuracy_estimate(candidate, variant)
    pairs = [(b, c) for b, c in seed_pairs(variant, base, candidate) if _scored(b) and _scored(c)]
    duplicated = _has_duplicate_seed(base, variant) or _has_duplicate_seed(candidate, variant)
    item = MetricVerdict(variant, ACCURACY, b_all, c_all, None, 0.0)
    if b_all is None or c_all is None:
        return item
    if len(pairs) >= stats.MIN_SEEDS and not duplicated:
        b_runs = pd.DataFrame([b for b, _ in pairs])
        c_runs = pd.DataFrame([c for _, c in pairs])
        item.contrast = stats.paired_accuracy(
            b_runs["test_correct"].astype(int), b_runs["n_test"].astype(int),
            c_runs["test_correct"].astype(int), c_runs["n_test"].astype(int))
        item.base, item.candidate = _accuracy_side(b_runs), _accuracy_side(c_runs)
        left_out = b_all.n + c_all.n - 2 * len(pairs)
        if left_out:
            item.notes.append(f"{left_out} run(s) without a partner seed on the other side "
                              "left out of the paired analysis")
        return item
    item.contrast = stats.unpaired(b_all, c_all)
    item.notes.append(
        "unpaired: a seed appears twice on one side (--allow-duplicates)" if duplicated
        else f"unpaired: {len(pairs)} seed(s) ran in the same configuration on both sides, "
             f"{stats.MIN_SEEDS} needed to pair by seed")
    return item


def step_contrast(variant: str, base: Side, candidate: Side, rule: SpeedRule
                  ) -> MetricVerdict:
    """Step time, always unpaired: it varies with the machine's load while a run lasts,
    not with the seed, so pairing by seed would cancel nothing and halve the degrees of
    freedom. Only over the runs `rule` keeps (one machine, not contended)."""
    b, c = step_estimate(base, variant, rule.keep), step_estimate(candidate, variant, rule.keep)
    contrast = stats.unpaired(b, c) if b is not None and c is not None else None
    return MetricVerdict(variant, STEP, b, c, contrast, 0.0, notes=list(rule.notes))


def assess(variant: str, base: Side, candidate: Side, limits: dict[str, float],
           allow_different_machines: bool = False) -> VariantResult:
    """Identity, then the two metrics' contrasts and tests; verdicts come later, in
    `decide`, once every test of the family is known (Holm needs them all). Step time
    only where resultset.machines allows it (same machine, no contention)."""
    rule = speed_rule(base.ok(variant), candidate.ok(variant), allow_different_machines)
    ident = identity(variant, base, candidate)
    if ident.status == "diverged" and rule.kernel_differences:
        ident = dataclasses.replace(ident, machines="; ".join(rule.kernel_differences))
    metrics = []
    for item in (accuracy_contrast(variant, base, candidate),
                 step_contrast(variant, base, candidate, rule)):
        item.threshold = limits[item.metric]
        if item.metric == STEP and not rule.allowed:
            item.verdict, item.reasons = NOT_COMPARABLE, [rule.reason] + item.notes
        elif item.metric == ACCURACY and ident.status == "identical":
            item.verdict = "identical"
            item.reasons = [f"{ident.text()}: every paired run matched exactly, epoch by epoch, "
                            "so accuracy cannot have regressed (no test needed)"]
        elif item.contrast is None:
            item.verdict = "inconclusive"
            item.reasons = [f"no {item.metric.replace('_', ' ')} on the "
                            f"{'base' if item.base is None else 'candidate'} side"]
        else:
            item.difference = stats.difference(item.contrast)
        metrics.append(item)
    return VariantResult(variant, ident, metrics, rule)


def decide(results: Sequence[VariantResult], alpha: float) -> int:
    """Holm over every tested metric of every variant, then the rule; returns K."""
    tested = [m for result in results for m in result.metrics if m.difference is not None]
    for item, p_adjusted in zip(tested, stats.holm([m.difference.p for m in tested])):
        metric = METRICS[item.metric]
        judgement = stats.judge(item.contrast, item.difference, p_adjusted,
                                threshold=item.threshold, alpha=alpha, tests=len(tested),
                                worse_when=metric.worse_when, describe=metric.describe)
        item.p_adjusted, item.judgement = p_adjusted, judgement
        item.verdict = judgement.verdict
        item.reasons = list(judgement.reasons) + item.notes
    return len(tested)


def check_parameters(alpha: float, min_change: float, max_slowdown: float) -> None:
    """The rule's three numbers within the bounds the CLI enforces (options.VERDICT_LIMITS),
    for callers that skip the CLI."""
    for name, value in (("alpha", alpha), ("min_change", min_change),
                        ("max_slowdown", max_slowdown)):
        VERDICT_LIMITS[name].check(value)


#: The rule's defaults, from the one table of verdict options.
ALPHA, MIN_CHANGE, MAX_SLOWDOWN = (VERDICT_LIMITS[name].default
                                   for name in ("alpha", "min_change", "max_slowdown"))


def compare_sides(base: Side, candidate: Side, *, alpha: float = ALPHA,
                  min_change: float = MIN_CHANGE, max_slowdown: float = MAX_SLOWDOWN,
                  notes: Sequence[str] = (), allow_different_machines: bool = False
                  ) -> Comparison:
    """Compare each variant present on both sides. Raises UsageError when no variant is."""
    check_parameters(alpha, min_change, max_slowdown)
    limits = thresholds(min_change, max_slowdown)
    results, lost, not_compared = [], [], []
    for variant in variant_order(list(base.runs["variant"]) + list(candidate.runs["variant"])):
        b_ok, c_ok = base.ok(variant), candidate.ok(variant)
        c_runs = candidate.runs[candidate.runs["variant"] == variant]
        if len(b_ok) and not len(c_ok) and len(c_runs):
            first = c_runs["error"].dropna()
            lost.append(f"all {len(c_runs)} candidate runs of {variant} failed"
                        + (f" (first: {first.iloc[0]})" if len(first) else ""))
        elif not len(b_ok) or not len(c_ok):
            where = ("only in candidate" if not (base.runs["variant"] == variant).any()
                     else "only in base" if c_runs.empty else "no ok runs in base")
            not_compared.append(f"{variant} ({where})")
        else:
            results.append(assess(variant, base, candidate, limits, allow_different_machines))
    if not results and not lost:
        raise UsageError("nothing to compare: no variant has ok runs in both base "
                         f"({', '.join(base.runs['variant'].unique())}) and candidate "
                         f"({', '.join(candidate.runs['variant'].unique())})")
    tests = decide(results, alpha)
    return Comparison(base.info(), candidate.info(), alpha, min_change, max_slowdown, tests,
                      results, lost, not_compared,
                      list(notes) + _setting_notes(base, candidate),
                      verdict_scope(pd.concat([base.runs, candidate.runs], ignore_index=True))
                      + scope_warnings(result.speed for result in results))


def compare(base: Sequence[Path], candidate: Sequence[Path], *, alpha: float = ALPHA,
            min_change: float = MIN_CHANGE, max_slowdown: float = MAX_SLOWDOWN,
            allow_mixed: bool = False, allow_duplicates: bool = False,
            allow_different_machines: bool = False) -> Comparison:
    """Load and check both sides (exit-2 errors before any test), then `compare_sides`."""
    check_parameters(alpha, min_change, max_slowdown)
    base_side = Side.load("base", base, allow_duplicates=allow_duplicates)
    candidate_side = Side.load("candidate", candidate, allow_duplicates=allow_duplicates)
    markers = check_comparable(pd.concat([base_side.runs, candidate_side.runs],
                                         ignore_index=True), allow_mixed)
    return compare_sides(base_side, candidate_side, alpha=alpha, min_change=min_change,
                         max_slowdown=max_slowdown, notes=markers + _same_sets(base, candidate),
                         allow_different_machines=allow_different_machines)


def _same_sets(base: Sequence[Path], candidate: Sequence[Path]) -> list[str]:
    """A note when a result set stands on both sides: its runs are compared with
    themselves, so `identical` then says nothing about a change between releases."""
    candidates = {Path(path).expanduser().resolve() for path in candidate}
    both = [Path(path).name for path in base if Path(path).expanduser().resolve() in candidates]
    if not both:
        return []
    whole = len(both) == len(base) == len(candidates)
    return [f"note: {'the candidate is the base itself' if whole else 'on both sides'} "
            f"({', '.join(both)}): its runs are compared with themselves and agree by "
            "construction; expected a candidate result set other than the base"]


def _setting_notes(base: Side, candidate: Side) -> list[str]:
    """Settings that differ between the sides: allowed, but a step-time ratio then
    compares them too."""
    notes = []
    for column in _SETTINGS_NOTED:
        b = ", ".join(unique(base.runs, column)) or "unknown"
        c = ", ".join(unique(candidate.runs, column)) or "unknown"
        if b != c:
            notes.append(f"note: {column} differs (base {b}, candidate {c}); step times "
                         "compare that too")
    return notes

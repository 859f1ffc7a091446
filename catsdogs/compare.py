"""Regression verdicts between two groups of result sets, and trends across TF versions.

`catsdogs compare BASE CANDIDATE` is a CI gate: exit 1 when a variant got confidently
worse, 0 otherwise. It must not cry wolf, so every verdict rests on a test over seeds
(accuracy) or on a bootstrap confidence interval over per-epoch step times (speed),
never on the difference of two single numbers:

- accuracy: Welch's t-test when both sides have >= 3 seeds that vary, else an exact
  permutation test over seeds; p-values are Holm-adjusted over the variants compared, so
  four variants do not get four chances at a false alarm. A regression needs the
  adjusted p < alpha AND a drop of more than 1 point.
- step time: the ratio of median step times (candidate / base) with a 95% bootstrap CI
  (seeds resampled, then epochs within each seed, fixed RNG seed); a regression needs the
  whole CI above 1 + max_slowdown/100. A Mann-Whitney U p-value over the epochs is shown
  for information.

Both sides are loaded and checked exactly as `report` does (same loader, same refusal
to mix datasets, limits, epochs or pretrained weights); TF and Keras versions may differ,
since they are what is compared.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from catsdogs.errors import UsageError
from catsdogs.report import (
    SOURCE,
    check_comparable,
    load_result_sets,
    new_figure,
    ok_runs,
    output_dir,
    save_figure,
    variant_order,
)

#: A drop must exceed this many accuracy points to count, however small its p-value.
MIN_ACCURACY_POINTS = 1.0
BOOTSTRAP_RESAMPLES = 2000
#: Fewer step-time values than this on a side: a ratio, but no interval and no verdict
#: (one epoch against one epoch would give a zero-width "confident" interval).
MIN_STEP_VALUES = 3
BOOTSTRAP_SEED = 0
#: Above this many arrangements the permutation test samples instead of enumerating.
EXACT_PERMUTATION_LIMIT = 200_000
PERMUTATION_SAMPLES = 20_000
#: Settings that may differ between base and candidate but change what a step costs.
_SETTINGS_NOTED = ("device", "gpu_name", "batch_size", "mixed_precision", "xla",
                   "deterministic", "strategy", "replicas")


# ---------------------------------------------------------------- one side


@dataclasses.dataclass
class Side:
    """The runs of one side of a comparison (one or more result sets, e.g. shards)."""

    label: str
    runs: pd.DataFrame
    epochs: pd.DataFrame
    environments: list[dict[str, Any]]

    @classmethod
    def load(cls, label: str, paths: Sequence[Path]) -> Side:
        runs, epochs, environments = load_result_sets(list(paths))
        return cls(label, runs, epochs, environments)

    def ok(self, variant: str) -> pd.DataFrame:
        return ok_runs(self.runs[self.runs["variant"] == variant])

    def accuracies(self, variant: str) -> np.ndarray:
        """Test accuracy per ok seed, in percent."""
        return self.ok(variant)["test_accuracy"].dropna().to_numpy(float) * 100

    def step_samples(self, variant: str) -> list[np.ndarray]:
        """Per ok run, its per-epoch median step times from epoch 2 on (epoch 1 holds
        tracing and autotuning; all epochs when a run has only one), or the run's
        step_time_ms when epochs.csv has none for it."""
        ok = self.ok(variant)
        epochs = self.epochs.dropna(subset=["step_ms_median"])
        by_run = {key: group for key, group in epochs.groupby([SOURCE, "run_id"])}
        samples = []
        for _, run in ok.iterrows():
            rows = by_run.get((run[SOURCE], run["run_id"]))
            values = np.array([])
            if rows is not None:
                later = rows[rows["epoch"] >= 2]
                values = (later if len(later) else rows)["step_ms_median"].to_numpy(float)
            if not len(values) and not pd.isna(run["step_time_ms"]):
                values = np.array([float(run["step_time_ms"])])
            if len(values):
                samples.append(values)
        return samples

    def describe(self) -> str:
        """'<sets> (TF x, Keras y, device)' for the header."""
        names = ", ".join(dict.fromkeys(self.runs["result_set"].dropna()))
        return (f"{names} (TF {_joined(self.runs, 'tf_version')}, "
                f"Keras {_joined(self.runs, 'keras_version')}, {_joined(self.runs, 'device')})")


def _joined(runs: pd.DataFrame, column: str) -> str:
    values = [str(v) for v in runs[column].dropna().unique() if str(v) != ""]
    return ", ".join(values) or "unknown"


# ---------------------------------------------------------------- accuracy


@dataclasses.dataclass
class AccuracyTest:
    """Candidate minus base, in accuracy points, and how sure we are it is not noise."""

    delta: float
    p: float
    test: str
    p_holm: float = float("nan")


def permutation_p(base: np.ndarray, candidate: np.ndarray, rng: np.random.Generator
                  ) -> tuple[float, bool]:
    """Two-sided permutation test of the difference in means: the share of all ways to
    split the pooled seeds into groups of these sizes whose |difference| is at least the
    observed one. Exact (enumerated) for small n; (p, exact)."""
    pooled = np.concatenate([base, candidate])
    n, k = len(pooled), len(candidate)
    observed = abs(candidate.mean() - base.mean())
    tolerance = 1e-9 * max(1.0, observed)
    total = pooled.sum()
    if math.comb(n, k) <= EXACT_PERMUTATION_LIMIT:
        picks = np.array(list(itertools.combinations(range(n), k)))
        exact = True
    else:
        picks = np.argsort(rng.random((PERMUTATION_SAMPLES, n)), axis=1)[:, :k]
        exact = False
    sums = pooled[picks].sum(axis=1)
    differences = np.abs(sums / k - (total - sums) / (n - k))
    return float(np.mean(differences >= observed - tolerance)), exact


def smallest_permutation_p(n_base: int, n_candidate: int) -> float:
    """The smallest p an exact two-sided permutation test can give with these sizes
    (the most extreme split, and its mirror image when the groups are equal)."""
    return (2 if n_base == n_candidate else 1) / math.comb(n_base + n_candidate, n_candidate)


def accuracy_test(base: np.ndarray, candidate: np.ndarray, alpha: float,
                  rng: np.random.Generator) -> AccuracyTest:
    """Welch's t-test when both sides have >= 3 seeds with nonzero variance (its
    assumptions are then at least checkable), else an exact permutation test; the test's
    name says which, and says when n is too small for p to ever reach alpha."""
    from scipy.stats import ttest_ind

    delta = float(candidate.mean() - base.mean())
    if (len(base) >= 3 and len(candidate) >= 3
            and np.var(base, ddof=1) > 0 and np.var(candidate, ddof=1) > 0):
        with warnings.catch_warnings():  # accuracies are multiples of 1/n_test: seeds
            warnings.simplefilter("ignore", RuntimeWarning)  # can be nearly equal, harmlessly
            p = float(ttest_ind(candidate, base, equal_var=False).pvalue)
        return AccuracyTest(delta, p, "Welch t")
    p, exact = permutation_p(base, candidate, rng)
    name = "exact permutation" if exact else f"permutation ({PERMUTATION_SAMPLES} samples)"
    floor = smallest_permutation_p(len(base), len(candidate))
    if floor >= alpha:
        name += f"; n too small: p >= {floor:.2f}, cannot reach {alpha:g}"
    return AccuracyTest(delta, p, name)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: the family-wise false-alarm rate stays at
    alpha however many variants are tested."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


# ---------------------------------------------------------------- step time


@dataclasses.dataclass
class StepTest:
    """Candidate / base median step time, its 95% bootstrap CI and a Mann-Whitney p."""

    ratio: float
    low: float
    high: float
    p_mwu: float


def _bootstrap_medians(samples: list[np.ndarray], rng: np.random.Generator,
                       resamples: int) -> np.ndarray:
    """Medians of `resamples` two-stage bootstrap samples: seeds with replacement, then
    epochs with replacement within each drawn seed (each seed weighs the same). Two
    stages, because a slow machine or an unlucky run moves all of a run's epochs at once:
    epochs alone would overstate the confidence."""
    count = len(samples)
    width = max(len(sample) for sample in samples)
    padded = np.full((count, width), np.nan)
    lengths = np.array([len(sample) for sample in samples])
    for i, sample in enumerate(samples):
        padded[i, :len(sample)] = sample
    seeds = rng.integers(0, count, size=(resamples, count))
    positions = (rng.random((resamples, count, width)) * lengths[seeds][..., None]).astype(int)
    draws = padded[seeds[..., None], positions]
    return np.median(draws.reshape(resamples, -1), axis=1)


def step_test(base: list[np.ndarray], candidate: list[np.ndarray],
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> StepTest:
    """The ratio of pooled median step times with a 95% percentile-bootstrap CI and a
    two-sided Mann-Whitney U p-value over the per-epoch values; with fewer than
    MIN_STEP_VALUES values on a side, the ratio alone (CI and p are NaN, so no verdict).
    Fixed RNG seed: the same inputs always give the same verdict."""
    from scipy.stats import mannwhitneyu

    base_all, candidate_all = np.concatenate(base), np.concatenate(candidate)
    ratio = float(np.median(candidate_all) / np.median(base_all))
    if min(len(base_all), len(candidate_all)) < MIN_STEP_VALUES:
        return StepTest(ratio, float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    ratios = (_bootstrap_medians(candidate, rng, resamples)
              / _bootstrap_medians(base, rng, resamples))
    low, high = np.percentile(ratios, [2.5, 97.5])
    p_mwu = float(mannwhitneyu(candidate_all, base_all, alternative="two-sided").pvalue)
    return StepTest(ratio, float(low), float(high), p_mwu)


# ---------------------------------------------------------------- verdicts


@dataclasses.dataclass
class VariantComparison:
    """Everything the table shows for one variant, and why its verdict is what it is."""

    variant: str
    base: np.ndarray
    candidate: np.ndarray
    accuracy: AccuracyTest
    step: StepTest | None
    verdict: str = "same"
    reasons: list[str] = dataclasses.field(default_factory=list)


def _judge(item: VariantComparison, alpha: float, max_slowdown: float) -> None:
    """regression: accuracy down significantly by more than 1 point, or step time
    confidently slower by more than max_slowdown %; improvement: the mirror image;
    a variant that is both is a regression (the gate must not hide it)."""
    acc, step = item.accuracy, item.step
    significant = acc.p_holm < alpha and abs(acc.delta) > MIN_ACCURACY_POINTS
    acc_text = (f"test accuracy {acc.delta:+.1f} pts ({item.base.mean():.1f}% -> "
                f"{item.candidate.mean():.1f}%, {acc.test.split(';')[0]} p={acc.p:.3g}, "
                f"Holm p={acc.p_holm:.3g})")
    worse, better = [], []
    if significant:
        (worse if acc.delta < 0 else better).append(acc_text)
    if step is not None:
        step_text = f"step time x{step.ratio:.2f} (95% CI {step.low:.2f}-{step.high:.2f})"
        if step.low > 1 + max_slowdown / 100:
            worse.append(f"{step_text}: confidently more than {max_slowdown:g}% slower")
        elif step.high < 1 - max_slowdown / 100:
            better.append(f"{step_text}: confidently more than {max_slowdown:g}% faster")
    if worse:
        item.verdict, item.reasons = "regression", worse
    elif better:
        item.verdict, item.reasons = "improvement", better
    else:
        item.verdict, item.reasons = "same", []


def _fmt(value: float, pattern: str = "{:.1f}") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else pattern.format(value)


def _mean_std(values: np.ndarray) -> str:
    if len(values) == 0:
        return ""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def _interval(step: StepTest | None) -> str:
    if step is None:
        return "n/a"
    if math.isnan(step.low):
        return f"n/a (< {MIN_STEP_VALUES} epochs)"
    return f"{step.low:.3f}-{step.high:.3f}"


def _table(items: list[VariantComparison]) -> str:
    rows = [{
        "variant": item.variant, "n base": len(item.base), "n cand": len(item.candidate),
        "acc base %": _mean_std(item.base), "acc cand %": _mean_std(item.candidate),
        "Δ pts": _fmt(item.accuracy.delta, "{:+.1f}"), "test": item.accuracy.test,
        "p": _fmt(item.accuracy.p, "{:.3g}"), "p Holm": _fmt(item.accuracy.p_holm, "{:.3g}"),
        "step ratio": _fmt(item.step.ratio, "{:.3f}") if item.step else "n/a",
        "95% CI": _interval(item.step),
        "p MWU": _fmt(item.step.p_mwu, "{:.3g}") if item.step else "",
        "verdict": item.verdict,
    } for item in items]
    return tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True)


def _setting_notes(base: Side, candidate: Side) -> list[str]:
    """Settings that differ between the sides: allowed, but the reader must know that a
    step-time ratio then compares them too."""
    notes = []
    for column in _SETTINGS_NOTED:
        b, c = _joined(base.runs, column), _joined(candidate.runs, column)
        if b != c:
            notes.append(f"note: {column} differs (base {b}, candidate {c}); step times "
                         "compare that too")
    return notes


def _variant_notes(variant: str, base: Side, candidate: Side) -> list[str]:
    """Failed runs left out, and single-seed sides whose interval cannot see run-to-run
    variation (a slow machine during that one run would look like a regression)."""
    notes = []
    for side in (base, candidate):
        runs = side.runs[side.runs["variant"] == variant]
        failed = int((runs["status"] != "ok").sum())
        if failed and failed < len(runs):
            notes.append(f"note: {variant}: {failed} of {len(runs)} {side.label} runs failed "
                         "and are left out")
        if len(side.ok(variant)) == 1:
            notes.append(f"note: {variant}: one {side.label} seed; its step-time CI covers "
                         "epoch-to-epoch noise only, not run-to-run")
    return notes


def compare_sets(base: list[Path], candidate: list[Path], *, alpha: float = 0.05,
                 max_slowdown: float = 10.0, allow_mixed: bool = False) -> tuple[str, int]:
    """Compare each variant present on both sides; return (text to print, exit code):
    1 if any variant regressed, else 0. Raises UsageError (the CLI exits 2) when the
    sides are not comparable or share no variant."""
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha: expected a number between 0 and 1, got {alpha!r}")
    if not max_slowdown >= 0:
        raise UsageError(f"--max-slowdown: expected a percentage >= 0, got {max_slowdown!r}")
    base_side, candidate_side = Side.load("base", base), Side.load("candidate", candidate)
    markers = check_comparable(pd.concat([base_side.runs, candidate_side.runs],
                                         ignore_index=True), allow_mixed)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    items: list[VariantComparison] = []
    lost: list[str] = []  # ok in base, every candidate run failed: a regression
    not_compared: list[str] = []
    notes: list[str] = []
    names = variant_order(list(base_side.runs["variant"]) + list(candidate_side.runs["variant"]))
    for variant in names:
        b, c = base_side.accuracies(variant), candidate_side.accuracies(variant)
        b_runs = base_side.runs[base_side.runs["variant"] == variant]
        c_runs = candidate_side.runs[candidate_side.runs["variant"] == variant]
        if len(b) and not len(c) and len(c_runs):
            first = c_runs["error"].dropna()
            lost.append(f"REGRESSION {variant}: all {len(c_runs)} candidate runs failed"
                        + (f" (first: {first.iloc[0]})" if len(first) else ""))
            continue
        if not len(b) or not len(c):
            where = ("only in candidate" if b_runs.empty else "only in base" if c_runs.empty
                     else "no ok runs in base")
            not_compared.append(f"{variant} ({where})")
            continue
        b_steps, c_steps = base_side.step_samples(variant), candidate_side.step_samples(variant)
        step = step_test(b_steps, c_steps) if b_steps and c_steps else None
        items.append(VariantComparison(variant, b, c, accuracy_test(b, c, alpha, rng), step))
        notes += _variant_notes(variant, base_side, candidate_side)
    if not items and not lost:
        raise UsageError("nothing to compare: no variant has ok runs in both base "
                         f"({', '.join(base_side.runs['variant'].unique())}) and candidate "
                         f"({', '.join(candidate_side.runs['variant'].unique())})")
    for item, p_holm in zip(items, holm([item.accuracy.p for item in items])):
        item.accuracy.p_holm = p_holm
        _judge(item, alpha, max_slowdown)
    regressions = [f"REGRESSION {item.variant}: " + "; ".join(item.reasons)
                   for item in items if item.verdict == "regression"] + lost
    improvements = [f"improvement {item.variant}: " + "; ".join(item.reasons)
                    for item in items if item.verdict == "improvement"]
    lines = [
        f"base:      {base_side.describe()}",
        f"candidate: {candidate_side.describe()}",
        (f"rule: regression = test accuracy down more than {MIN_ACCURACY_POINTS:g} pts with "
         f"Holm-adjusted p < {alpha:g} ({len(items)} variants), or step time 95% CI above "
         f"{1 + max_slowdown / 100:.2f}x; improvement is the mirror image"),
        "",
    ]
    if items:
        lines += [_table(items), ""]
    if not_compared:
        lines.append("not compared: " + ", ".join(not_compared))
    lines += markers + _setting_notes(base_side, candidate_side) + notes
    lines += improvements + regressions
    same = sum(item.verdict == "same" for item in items)
    lines.append(f"result: {len(regressions)} regression(s), {len(improvements)} "
                 f"improvement(s), {same} same, {len(not_compared)} not compared")
    return "\n".join(lines), 1 if regressions else 0


# ---------------------------------------------------------------- trend


def version_key(version: str) -> tuple:
    """Order TF versions as numbers: 2.9 < 2.10 < 2.21.0rc1 < 2.21.0; unparseable last."""
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(str(version)), "")
    except InvalidVersion:
        return (1, Version("0"), str(version))


def trend_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant and TF version (in version order): Keras, n seeds, test accuracy mean
    and std (percent), median step time (ms)."""
    ok = ok_runs(runs)
    versions = sorted(ok["tf_version"].dropna().unique(), key=version_key)
    rows = []
    for variant in variant_order(ok["variant"]):
        for version in versions:
            sub = ok[(ok["variant"] == variant) & (ok["tf_version"] == version)]
            if sub.empty:
                continue
            accuracy = sub["test_accuracy"].dropna().astype(float) * 100
            rows.append({
                "variant": variant, "tf_version": version,
                "keras_version": _joined(sub, "keras_version"), "n": len(sub),
                "test_accuracy_pct_mean": accuracy.mean(),
                "test_accuracy_pct_std": accuracy.std(ddof=1) if len(accuracy) > 1 else np.nan,
                "step_time_ms_median": sub["step_time_ms"].dropna().astype(float).median(),
            })
    return pd.DataFrame(rows, columns=["variant", "tf_version", "keras_version", "n",
                                       "test_accuracy_pct_mean", "test_accuracy_pct_std",
                                       "step_time_ms_median"])


def trend_plot(table: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """Two panels over TF versions: test accuracy (mean ± std) and median step time."""
    versions = sorted(table["tf_version"].unique(), key=version_key)
    position = {version: i for i, version in enumerate(versions)}
    figure, (acc_axis, step_axis) = new_figure(11, 4.2, ncols=2)
    for variant in variant_order(table["variant"]):
        rows = table[table["variant"] == variant]
        x = [position[v] for v in rows["tf_version"]]
        acc_axis.errorbar(x, rows["test_accuracy_pct_mean"],
                          yerr=rows["test_accuracy_pct_std"].fillna(0), marker="o", capsize=3,
                          label=variant)
        step_axis.plot(x, rows["step_time_ms_median"], marker="o", label=variant)
    acc_axis.axhline(50.0, linestyle="--", color="grey", linewidth=1, label="50% baseline")
    for axis, ylabel in ((acc_axis, "test accuracy (%, mean ± std)"),
                         (step_axis, "median training step (ms)")):
        axis.set_xticks(range(len(versions)), [f"TF {v}" for v in versions], fontsize=8)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    step_axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, out, "trend")


def trend(result_sets: list[Path], out: Path | None = None, *, allow_mixed: bool = False
          ) -> str:
    """Accuracy and step time per variant across TF versions, as a table (returned) and
    `trend.png`/`trend.pdf` in `out` (default: the first result set's folder)."""
    runs, _, _ = load_result_sets(result_sets)
    markers = check_comparable(runs, allow_mixed)
    table = trend_table(runs)
    if table.empty:
        raise UsageError("trend: no ok runs in the given result sets; expected at least one "
                         "finished run")
    shown = table.assign(
        test_accuracy_pct_mean=[
            f"{m:.1f}" + (f" ± {s:.1f}" if not math.isnan(s) else "")
            for m, s in zip(table["test_accuracy_pct_mean"], table["test_accuracy_pct_std"])],
        step_time_ms_median=[_fmt(v) for v in table["step_time_ms_median"]],
    ).drop(columns="test_accuracy_pct_std").rename(columns={
        "tf_version": "TF", "keras_version": "Keras", "test_accuracy_pct_mean":
        "test acc % (mean ± std)", "step_time_ms_median": "step ms (median)"})
    text = tabulate(shown, headers="keys", tablefmt="github", showindex=False,
                    disable_numparse=True)
    devices = _joined(runs, "device")
    title = (f"{_joined(runs, 'dataset')} data, {devices}, seeds "
             f"{', '.join(str(s) for s in sorted(runs['seed'].dropna().unique()))}")
    folder = output_dir(out, result_sets)
    written = trend_plot(table, folder, title)
    lines = [text, ""] + markers
    if "," in devices:
        lines.append(f"note: devices differ ({devices}); step times compare hardware too")
    lines.append(f"wrote into {folder}: " + ", ".join(path.name for path in written))
    return "\n".join(lines)

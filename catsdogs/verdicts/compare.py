"""Regression verdicts between two groups of result sets: identity first, then statistics.

`catsdogs compare BASE CANDIDATE` is a CI gate. Per variant it first pairs runs by
(variant, seed, configuration) and compares their histories exactly
(catsdogs.verdicts.identity); then
it judges test accuracy (paired by seed when both sides hold the same seeds) and step
time (unpaired) with the rule of `catsdogs.stats` (regression, improvement, unchanged or
inconclusive; docs/verdicts.md says it in plain words). Sides load in catsdogs.verdicts.side.
Accuracy of a variant whose paired runs are identical is `identical`: no test needed.

This module loads, checks and decides, returning dataclasses; `render_text` and
`to_json` format them. Exit codes: 1 on any regression, else 0; with strict, 3 when
something is inconclusive; 2 (UsageError) for unusable input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from catsdogs import stats
from catsdogs.errors import UsageError
from catsdogs.resultset.comparable import check_comparable, variant_order
from catsdogs.resultset.describe import unique, verdict_scope
from catsdogs.verdicts.identity import Identity, identity, seed_pairs
from catsdogs.verdicts.side import Side

JSON_SCHEMA = "catsdogs-verdicts/1"
ACCURACY, STEP = "test_accuracy", "step_time"
#: Settings that may differ between sides but change what a step costs.
_SETTINGS_NOTED = ("device", "gpu_name", "batch_size", "mixed_precision", "xla",
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
    scope: list[str] = dataclasses.field(default_factory=list)  # scope.verdict_scope

    def verdicts(self) -> list[MetricVerdict]:
        return [m for result in self.results for m in result.metrics]

    def count(self, verdict: str) -> int:
        return sum(m.verdict == verdict for m in self.verdicts())

    def exit_code(self, strict: bool = False) -> int:
        if self.lost or self.count("regression"):
            return 1
        return 3 if strict and self.count("inconclusive") else 0


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


def step_estimate(side: Side, variant: str) -> stats.SideEstimate | None:
    """The variant's ok runs with step times as a step-time side (None without any)."""
    samples = [m for _, run in side.ok(variant).iterrows() if len(m := side.step_medians(run))]
    return stats.step_side(samples) if samples else None


def _scored(run: pd.Series) -> bool:
    return not (pd.isna(run["test_correct"]) or pd.isna(run["n_test"]))


def _has_duplicate_seed(side: Side, variant: str) -> bool:
    return bool(side.ok(variant)["seed"].duplicated().any())


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


def step_contrast(variant: str, base: Side, candidate: Side) -> MetricVerdict:
    """Step time, always unpaired: it varies with the machine's load while a run lasts,
    not with the seed, so pairing by seed would cancel nothing and halve the degrees of
    freedom."""
    b, c = step_estimate(base, variant), step_estimate(candidate, variant)
    contrast = stats.unpaired(b, c) if b is not None and c is not None else None
    return MetricVerdict(variant, STEP, b, c, contrast, 0.0)


def assess(variant: str, base: Side, candidate: Side, limits: dict[str, float]
           ) -> VariantResult:
    """Identity, then the two metrics' contrasts and tests; verdicts come later, in
    `decide`, once every test of the family is known (Holm needs them all)."""
    ident = identity(variant, base, candidate)
    metrics = []
    for build in (accuracy_contrast, step_contrast):
        item = build(variant, base, candidate)
        item.threshold = limits[item.metric]
        if item.metric == ACCURACY and ident.status == "identical":
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
    return VariantResult(variant, ident, metrics)


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
    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha: expected a number between 0 and 0.5, got {alpha!r}")
    if not 0 <= min_change < 100:
        raise UsageError(f"--min-change: expected accuracy points in [0, 100), got "
                         f"{min_change!r}")
    if not 0 <= max_slowdown <= 1000:
        raise UsageError(f"--max-slowdown: expected a percentage in [0, 1000], got "
                         f"{max_slowdown!r}")


def compare_sides(base: Side, candidate: Side, *, alpha: float = 0.05,
                  min_change: float = 1.0, max_slowdown: float = 10.0,
                  notes: Sequence[str] = ()) -> Comparison:
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
            results.append(assess(variant, base, candidate, limits))
    if not results and not lost:
        raise UsageError("nothing to compare: no variant has ok runs in both base "
                         f"({', '.join(base.runs['variant'].unique())}) and candidate "
                         f"({', '.join(candidate.runs['variant'].unique())})")
    tests = decide(results, alpha)
    return Comparison(base.info(), candidate.info(), alpha, min_change, max_slowdown, tests,
                      results, lost, not_compared,
                      list(notes) + _setting_notes(base, candidate),
                      verdict_scope(pd.concat([base.runs, candidate.runs], ignore_index=True)))


def compare(base: Sequence[Path], candidate: Sequence[Path], *, alpha: float = 0.05,
            min_change: float = 1.0, max_slowdown: float = 10.0, allow_mixed: bool = False,
            allow_duplicates: bool = False) -> Comparison:
    """Load and check both sides (exit-2 errors before any test), then `compare_sides`."""
    check_parameters(alpha, min_change, max_slowdown)
    base_side = Side.load("base", base, allow_duplicates=allow_duplicates)
    candidate_side = Side.load("candidate", candidate, allow_duplicates=allow_duplicates)
    markers = check_comparable(pd.concat([base_side.runs, candidate_side.runs],
                                         ignore_index=True), allow_mixed)
    return compare_sides(base_side, candidate_side, alpha=alpha, min_change=min_change,
                         max_slowdown=max_slowdown, notes=markers)


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


# ---------------------------------------------------------------- rendering


def _num(value: float | None, pattern: str) -> str:
    return "" if value is None or math.isnan(value) else pattern.format(value)


def verdict_record(item: MetricVerdict) -> dict[str, Any]:
    """One variant and metric as numbers in the metric's reading unit (JSON and table)."""
    metric = METRICS[item.metric]
    judgement = item.judgement
    record: dict[str, Any] = {
        "variant": item.variant, "metric": item.metric, "unit": metric.unit,
        "n_base": item.base.n if item.base else 0,
        "n_candidate": item.candidate.n if item.candidate else 0,
        "base_estimate": metric.shown(item.base.mean) if item.base else None,
        "candidate_estimate": metric.shown(item.candidate.mean) if item.candidate else None,
        "analysis": item.contrast.analysis if item.difference else None,
        "n_pairs": (item.contrast.n if item.difference
                    and item.contrast.analysis == stats.PAIRED else 0),
        "change": None, "interval": None, "interval_level": None, "p": None,
        "p_adjusted": item.p_adjusted, "df": None,
        "threshold": metric.shown(item.threshold), "detectable": None,
        "seeds_needed": None, "verdict": item.verdict, "reasons": list(item.reasons)}
    if item.difference is not None and judgement is not None:
        low, high = judgement.interval
        record.update({
            "change": metric.shown(item.difference.estimate),
            "interval": (None if math.isnan(low)
                         else [metric.shown(low), metric.shown(high)]),
            "interval_level": judgement.interval_level, "p": item.difference.p,
            "df": None if math.isinf(item.difference.df) else item.difference.df,
            "detectable": (None if math.isnan(judgement.detectable)
                           else metric.shown(judgement.detectable)),
            "seeds_needed": judgement.seeds_needed})
    return record


def _row(item: MetricVerdict, ident: Identity) -> dict[str, str]:
    record = verdict_record(item)
    step = item.metric == STEP
    estimate = "{:.1f} ms" if step else "{:.1f}%"
    change = "x{:.3f}" if step else "{:+.1f}"
    interval = record["interval"] or [None, None]
    return {
        "variant": item.variant, "metric": "step time" if step else "test accuracy",
        "numerics": "" if step else ident.text(),
        "n": f"{record['n_base']}/{record['n_candidate']}",
        "base": _num(record["base_estimate"], estimate),
        "candidate": _num(record["candidate_estimate"], estimate),
        "change": _num(record["change"], change),
        "interval": (f"{_num(interval[0], change)} to {_num(interval[1], change)}"
                     if record["interval"] else ""),
        "Holm p": _num(record["p_adjusted"], "{:.3g}"),
        "detectable": _num(record["detectable"], "x{:.3f}" if step else "±{:.1f}"),
        "verdict": item.verdict}


def _table_rows(comparison: Comparison) -> list[dict[str, str]]:
    """One display row per variant and metric, for every renderer."""
    return [_row(item, result.identity) for result in comparison.results
            for item in result.metrics]


def _reasons(comparison: Comparison) -> list[tuple[str, str]]:
    """(verdict, why) per variant and metric, then each lost variant as a regression."""
    return ([(item.verdict, f"{item.variant} {item.metric.replace('_', ' ')}: "
              + "; ".join(item.reasons)) for item in comparison.verdicts()]
            + [("regression", text) for text in comparison.lost])


def _counts(comparison: Comparison) -> str:
    return ", ".join(f"{comparison.count(v)} {v}" for v in stats.VERDICTS + ("identical",))


def render_text(comparison: Comparison, fmt: str = "github") -> str:
    """The human report: header, one table row per variant and metric, the reasons."""
    lines = [f"base:      {_describe(comparison.base)}",
             f"candidate: {_describe(comparison.candidate)}",
             *comparison.scope,
             (f"rule: regression/improvement = change beyond {comparison.min_change:g} pts "
              f"accuracy or x{1 + comparison.max_slowdown / 100:.2f} step time AND Holm p < "
              f"{comparison.alpha:g} over {comparison.tests} tests; unchanged = "
              f"{1 - 2 * comparison.alpha:.0%} interval inside the threshold; else "
              "inconclusive (docs/verdicts.md)"), ""]
    rows = _table_rows(comparison)
    if rows:
        lines += [tabulate(rows, headers="keys", tablefmt="github" if fmt == "github"
                           else "plain", disable_numparse=True), ""]
    lines += [f"{verdict.upper() if verdict == 'regression' else verdict} {why}"
              for verdict, why in _reasons(comparison)]
    if comparison.not_compared:
        lines.append("not compared: " + ", ".join(comparison.not_compared))
    lines += comparison.notes
    lines.append(f"result: {_counts(comparison)}; {len(comparison.lost)} lost variant(s)")
    return "\n".join(lines)


def render_html(comparison: Comparison) -> str:
    """The verdicts as an HTML fragment for the report's comparison section: the same rows
    and reasons as `render_text`, every cell escaped (result-set names are user text)."""
    from html import escape

    rows = _table_rows(comparison)
    head = ("<p>base: " + escape(_describe(comparison.base)) + "<br>candidate: "
            + escape(_describe(comparison.candidate)) + "</p>"
            + "".join(f"<p>{escape(line)}</p>" for line in comparison.scope))
    if not rows:
        return head + "<p>No variant is on both sides.</p>"
    table = ["<table><thead><tr>", *[f"<th>{escape(key)}</th>" for key in rows[0]],
             "</tr></thead><tbody>"]
    for row in rows:
        table += ["<tr>", *[f"<td>{escape(cell)}</td>" for cell in row.values()], "</tr>"]
    table.append("</tbody></table>")
    reasons = [f"<li><b>{escape(verdict)}</b> {escape(why)}</li>"
               for verdict, why in _reasons(comparison)]
    return (head + "".join(table) + "<ul>" + "".join(reasons) + "</ul>"
            + f"<p>result: {escape(_counts(comparison))} (rule: docs/verdicts.md)</p>")


def detectable_markdown(rows: Sequence[dict[str, float]]) -> str:
    """stats.smallest_detectable_table as the Markdown table in docs/verdicts.md."""
    paired_spread = f"{stats.TABLE_DROP_SPREAD:g}"
    accuracy = {"drop_pts_paired_spread_0": "drop, paired, drops agree (pts)",
                f"drop_pts_paired_spread_{paired_spread}":
                    f"drop, paired, drop sd {paired_spread} pts (pts)",
                "drop_pts_unpaired_spread_0": "drop, unpaired, seeds agree (pts)",
                "drop_pts_unpaired_spread_binomial": "drop, unpaired, seed sd = binomial sd (pts)"}
    step_keys = [key for key in rows[0] if key.startswith("slowdown_pct_spread_")]
    headers = (["seeds per side"] + list(accuracy.values())
               + [f"slowdown, run-to-run sd {float(key.rsplit('_', 1)[1]):.0%}"
                  for key in step_keys])
    table = [[str(int(row["seeds"]))] + [f"{row[key]:.1f}" for key in accuracy]
             + [f"{row[key]:.0f}%" for key in step_keys] for row in rows]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def _describe(info: dict[str, Any]) -> str:
    return (f"{', '.join(info['result_sets'])} (TF {', '.join(info['tf_versions']) or '?'}, "
            f"Keras {', '.join(info['keras_versions']) or '?'}, "
            f"{', '.join(info['devices']) or '?'})")


def json_records(comparison: Comparison) -> list[dict[str, Any]]:
    """One object per variant and metric, each carrying both sides' sets and versions."""
    records = []
    for result in comparison.results:
        for item in result.metrics:
            record = verdict_record(item)
            record["identity"] = (dataclasses.asdict(result.identity)
                                  | {"text": result.identity.text()})
            record["base"], record["candidate"] = comparison.base, comparison.candidate
            records.append(record)
    return records


def to_json(comparison: Comparison, strict: bool = False) -> dict[str, Any]:
    """The document `--json PATH` writes (schema in docs/verdicts.md)."""
    return {"schema": JSON_SCHEMA, "command": "compare", "alpha": comparison.alpha,
            "min_change_pts": comparison.min_change,
            "max_slowdown_pct": comparison.max_slowdown, "tests": comparison.tests,
            "base": comparison.base, "candidate": comparison.candidate,
            "verdicts": json_records(comparison), "lost": comparison.lost,
            "not_compared": comparison.not_compared, "notes": comparison.notes,
            "scope": comparison.scope,
            "exit_code": comparison.exit_code(strict)}


def check_json_path(path: Path | None) -> None:
    """Before any work: the folder for --json must exist (nothing half-written later)."""
    if path is not None and not Path(path).parent.is_dir():
        raise UsageError(f"--json: folder {str(Path(path).parent)!r} does not exist; "
                         "expected a path in an existing folder")


def write_json(path: Path, document: dict[str, Any]) -> None:
    import json

    from catsdogs.fsutil import atomic_write

    atomic_write(Path(path), json.dumps(document, indent=2, allow_nan=False) + "\n")

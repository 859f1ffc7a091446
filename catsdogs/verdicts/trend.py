"""Accuracy and step time per variant across TensorFlow releases, and where they changed.

`catsdogs trend SET [SET ...]` groups result sets by TF version, orders the releases as
versions (2.9 < 2.10 < 2.21.0rc1 < 2.21.0), and compares each release with the one
before it exactly as `compare` does: identity first, then the statistics of
`catsdogs.stats`, with one Holm correction over every test of the trend. The first
release whose comparison with its predecessor is a regression or an improvement is the
step (one release: no trend). Figures: `trend.png`/`trend.pdf`.
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
from catsdogs.report.figures import save_figure
from catsdogs.resultset.comparable import check_comparable, ok_runs, variant_order
from catsdogs.resultset.describe import verdict_scope
from catsdogs.resultset.store import load_result_sets
from catsdogs.verdicts.compare import (
    ACCURACY,
    JSON_SCHEMA,
    STEP,
    VariantResult,
    accuracy_estimate,
    assess,
    check_parameters,
    decide,
    step_estimate,
    thresholds,
    verdict_record,
)
from catsdogs.verdicts.side import Side, with_lines


def version_key(version: str) -> tuple:
    """Order TF versions as releases: 2.9 < 2.10 < 2.21.0rc1 < 2.21.0; unparseable last."""
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(str(version)), "")
    except InvalidVersion:
        return (1, Version("0"), str(version))


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
    scope: list[str] = dataclasses.field(default_factory=list)  # scope.verdict_scope

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

    def numerics_changed(self, variant: str) -> list[str]:
        """Releases where the variant's paired runs stopped being identical."""
        return [f"{step.after} ({result.identity.text()})" for step in self.steps
                for result in step.results
                if result.variant == variant and result.identity.status == "diverged"]


@dataclasses.dataclass(frozen=True)
class Duplicate:
    """A variant and seed recorded ok more than once in one release."""

    variant: str
    seed: int
    count: int
    version: str

    def text(self) -> str:
        return f"{self.variant} seed {self.seed} x{self.count} in TF {self.version}"


def _duplicates(release: Release) -> list[Duplicate]:
    counts = ok_runs(release.side.runs).groupby(["variant", "seed"]).size()
    return [Duplicate(variant, int(seed), int(n), release.version)
            for (variant, seed), n in counts.items() if n > 1]


def build_trend(result_sets: Sequence[Path], *, alpha: float = 0.05, min_change: float = 1.0,
                max_slowdown: float = 10.0, allow_mixed: bool = False,
                allow_duplicates: bool = False) -> Trend:
    """Load, check (step times against epochs.csv; each variant and seed once per
    release unless allow_duplicates, then flagged), and compare neighbouring releases."""
    check_parameters(alpha, min_change, max_slowdown)
    runs, epochs, _ = load_result_sets(list(result_sets))
    runs = with_lines(runs)
    markers = check_comparable(runs, allow_mixed)
    Side("all", runs, epochs).check_step_times()
    if ok_runs(runs).empty:
        raise UsageError("trend: no ok runs in the given result sets; expected at least one "
                         "finished run")
    versions = sorted(runs["tf_version"].fillna("unknown").unique(), key=version_key)
    releases = []
    for version in versions:
        chosen = runs["tf_version"].fillna("unknown") == version
        side = Side.from_frames(f"TF {version}", runs[chosen], epochs)
        if not allow_duplicates:
            side.check_duplicates()
        releases.append(Release(version, side))
    limits = thresholds(min_change, max_slowdown)
    steps = []
    for before, after in zip(releases, releases[1:]):
        shared = [v for v in variant_order(before.side.runs["variant"])
                  if len(before.side.ok(v)) and len(after.side.ok(v))]
        steps.append(Step(before.version, after.version,
                          [assess(v, before.side, after.side, limits) for v in shared]))
    tests = decide([result for step in steps for result in step.results], alpha)
    duplicates = [text for release in releases for text in _duplicates(release)]
    return Trend(releases, steps, alpha, min_change, max_slowdown, tests, duplicates, markers,
                 verdict_scope(runs))


# ---------------------------------------------------------------- rendering


def _mean_sd(estimate: stats.SideEstimate | None, step: bool) -> str:
    if estimate is None:
        return ""
    if step:
        return f"{math.exp(estimate.mean):.1f}"
    sd = f" ± {math.sqrt(estimate.spread_var):.1f}" if estimate.n > 1 else ""
    return f"{estimate.mean:.1f}{sd}"


def trend_rows(trend: Trend) -> list[dict[str, Any]]:
    """Per variant and release: n, accuracy, step time, and the verdicts against the
    release before (numbers, for the table, the plot and the JSON)."""
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
            rows.append({
                "variant": variant, "tf_version": release.version,
                "keras_version": ", ".join(release.info()["keras_versions"]),
                "n": len(ok), "duplicate": (variant, release.version) in flagged,
                "accuracy": accuracy_estimate(release.side, variant),
                "step": step_estimate(release.side, variant),
                "numerics": result.identity.text() if result else "",
                "accuracy_verdict": verdicts.get(ACCURACY, ""),
                "step_verdict": verdicts.get(STEP, "")})
    return rows


def render_text(trend: Trend, fmt: str = "github") -> str:
    rows = [{"variant": row["variant"], "TF": row["tf_version"], "Keras": row["keras_version"],
             "n": f"{row['n']}{' DUPLICATE' if row['duplicate'] else ''}",
             "test acc % (mean ± sd)": _mean_sd(row["accuracy"], False),
             "step ms": _mean_sd(row["step"], True),
             "numerics vs previous": row["numerics"],
             "accuracy vs previous": row["accuracy_verdict"],
             "step time vs previous": row["step_verdict"]} for row in trend_rows(trend)]
    lines = [*trend.scope, "",
             tabulate(rows, headers="keys", tablefmt="github" if fmt == "github" else "plain",
                      disable_numparse=True), ""]
    if len(trend.releases) == 1:
        lines.append(f"one release (TF {trend.releases[0].version}): no trend")
    else:
        lines.append(f"releases in order: {' < '.join(r.version for r in trend.releases)}; "
                     f"each compared with the one before ({trend.tests} tests, Holm, alpha "
                     f"{trend.alpha:g}; rule in docs/verdicts.md)")
        for variant in variant_order(r["variant"] for r in rows):
            first = trend.first_change(variant)
            lines.append(f"{variant}: " + (f"first change at TF {first[0]} ("
                                           f"{', '.join(first[1])})" if first
                                           else "no release changed accuracy or step time "
                                                "(regression/improvement)"))
            changed = trend.numerics_changed(variant)
            if changed:
                lines.append(f"{variant}: numerics changed at TF " + "; ".join(changed))
    if trend.duplicates:
        lines.append("DUPLICATE seeds (--allow-duplicates; counted twice): "
                     + ", ".join(dup.text() for dup in trend.duplicates))
    lines += trend.notes
    return "\n".join(lines)


def to_json(trend: Trend) -> dict[str, Any]:
    """The document `trend --json PATH` writes (schema in docs/verdicts.md)."""
    verdicts = []
    by_version = {release.version: release.info() for release in trend.releases}
    for step in trend.steps:
        for result in step.results:
            for item in result.metrics:
                record = verdict_record(item)
                record["identity"] = (dataclasses.asdict(result.identity)
                                      | {"text": result.identity.text()})
                record["base"], record["candidate"] = by_version[step.before], \
                    by_version[step.after]
                verdicts.append(record)
    variants = variant_order(r["variant"] for r in trend_rows(trend))
    return {"schema": JSON_SCHEMA, "command": "trend", "alpha": trend.alpha,
            "min_change_pts": trend.min_change, "max_slowdown_pct": trend.max_slowdown,
            "tests": trend.tests, "releases": [r.version for r in trend.releases],
            "verdicts": verdicts,
            "first_change": {v: (trend.first_change(v) or (None,))[0] for v in variants},
            "numerics_changed": {v: trend.numerics_changed(v) for v in variants},
            "duplicates": [dataclasses.asdict(dup) for dup in trend.duplicates],
            "notes": trend.notes, "scope": trend.scope}


def trend_series(trend: Trend) -> dict[str, dict[str, Any]]:
    """Per variant, what the trend figure draws: release positions, each release's
    per-seed test accuracies (%) and step times (ms), and where its numerics changed."""
    position = {release.version: i for i, release in enumerate(trend.releases)}
    variants = variant_order(pd.concat([r.side.runs["variant"] for r in trend.releases]))
    series: dict[str, dict[str, Any]] = {}
    for variant in variants:
        data: dict[str, Any] = {"x": [], "accuracy": [], "step": [], "changed": []}
        for release in trend.releases:
            ok = release.side.ok(variant)
            if ok.empty:
                continue
            data["x"].append(position[release.version])
            data["accuracy"].append(list(ok["test_accuracy"].astype(float) * 100))
            data["step"].append(list(ok["step_time_ms"].dropna().astype(float)))
        changed = {text.split(" ", 1)[0] for text in trend.numerics_changed(variant)}
        data["changed"] = [position[v] for v in changed if position[v] in data["x"]]
        series[variant] = data
    return series


def trend_plot(trend: Trend, out: Path) -> list[Path]:
    """trend.png/.pdf: accuracy and step time over releases (catsdogs.report.figures.draw_trend)."""
    from catsdogs.report.figures import draw_trend

    runs = pd.concat([release.side.runs for release in trend.releases], ignore_index=True)
    figure = draw_trend([r.version for r in trend.releases], trend_series(trend), runs)
    return save_figure(figure, out, "trend")

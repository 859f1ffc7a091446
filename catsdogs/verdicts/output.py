"""Every text, HTML and JSON form of the verdicts of compare and trend, and the trend figure.

The decisions (catsdogs.verdicts.compare, catsdogs.verdicts.trend) return dataclasses and
draw nothing; this module renders them, so a verdict can be decided, tested and gated on
without a table library, an HTML escaper or matplotlib. The JSON record of one verdict
(`verdict_record`, `verdict_entries`) is built once here for both commands.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from catsdogs import stats
from catsdogs.fsutil import atomic_write
from catsdogs.markup import ESCAPERS, html_table, html_text
from catsdogs.resultset.comparable import variant_order
from catsdogs.resultset.machines import NOT_COMPARABLE, contended_note, uncontended
from catsdogs.resultset.outputs import check_output_path
from catsdogs.training.machine import NOT_RECORDED
from catsdogs.verdicts.compare import JSON_SCHEMA, METRICS, STEP, Comparison, MetricVerdict
from catsdogs.verdicts.identity import Identity
from catsdogs.verdicts.trend import Trend, release_name, trend_rows

# ---------------------------------------------------------------- compare

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
    return ", ".join(f"{comparison.count(v)} {v}"
                     for v in stats.VERDICTS + ("identical", NOT_COMPARABLE))


def _escaper(fmt: str):
    """Markdown escaping for `--format github`, plain-text escaping otherwise: every text
    that came from a result set (names, versions, errors) goes through it."""
    return ESCAPERS["github" if fmt == "github" else "plain"]


def compare_text(comparison: Comparison, fmt: str = "github") -> str:
    """The human report: header, one table row per variant and metric, the reasons."""
    shown = _escaper(fmt)
    lines = [f"base:      {shown(_describe(comparison.base))}",
             f"candidate: {shown(_describe(comparison.candidate))}",
             *map(shown, comparison.scope),
             (f"rule: regression/improvement = change beyond {comparison.min_change:g} pts "
              f"accuracy or x{1 + comparison.max_slowdown / 100:.2f} step time AND Holm p < "
              f"{comparison.alpha:g} over {comparison.tests} tests; unchanged = "
              f"{1 - 2 * comparison.alpha:.0%} interval inside the threshold; else "
              "inconclusive (docs/verdicts.md)"), ""]
    rows = [{key: shown(value) for key, value in row.items()}
            for row in _table_rows(comparison)]
    if rows:
        lines += [tabulate(rows, headers="keys", tablefmt="github" if fmt == "github"
                           else "plain", disable_numparse=True), ""]
    lines += [f"{verdict.upper() if verdict == 'regression' else verdict} {shown(why)}"
              for verdict, why in _reasons(comparison)]
    if comparison.not_compared:
        lines.append("not compared: " + shown(", ".join(comparison.not_compared)))
    lines += map(shown, comparison.notes)
    lines.append(f"result: {_counts(comparison)}; {len(comparison.lost)} lost variant(s)")
    return "\n".join(lines)


def compare_html(comparison: Comparison) -> str:
    """The verdicts as an HTML fragment for the report's comparison section: the same rows
    and reasons as `compare_text`, every cell escaped (result-set names are user text)."""
    rows = _table_rows(comparison)
    head = ("<p>base: " + html_text(_describe(comparison.base)) + "<br>candidate: "
            + html_text(_describe(comparison.candidate)) + "</p>"
            + "".join(f"<p>{html_text(line)}</p>" for line in comparison.scope))
    if not rows:
        return head + "<p>No variant is on both sides.</p>"
    table = html_table(list(rows[0]), [list(row.values()) for row in rows])
    reasons = [f"<li><b>{html_text(verdict)}</b> {html_text(why)}</li>"
               for verdict, why in _reasons(comparison)]
    return (head + table + "<ul>" + "".join(reasons) + "</ul>"
            + f"<p>result: {html_text(_counts(comparison))} (rule: docs/verdicts.md)</p>")


def _describe(info: dict[str, Any]) -> str:
    """'<sets> (TF 2.21.0, Keras 3.15.1, cpu)'; a side on another Keras backend names it
    in TensorFlow's place: '(jax 0.10.2, Keras 3.15.1, cpu)'."""
    software = [f"{name} {', '.join(info[key])}" for name, key in
                (("TF", "tf_versions"), ("jax", "jax_versions"), ("torch", "torch_versions"))
                if info.get(key)]
    return (f"{', '.join(info['result_sets'])} ({', '.join(software) or 'TF ?'}, "
            f"Keras {', '.join(info['keras_versions']) or '?'}, "
            f"{', '.join(info['devices']) or '?'}, "
            f"machine {', '.join(info.get('machines') or [NOT_RECORDED])})")


def verdict_entries(results: Sequence[Any], base: dict[str, Any], candidate: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """One JSON object per variant and metric of `results` (compare's VariantResults), each
    carrying its identity and both sides' sets and versions: the record compare and trend
    both write."""
    records = []
    for result in results:
        for item in result.metrics:
            record = verdict_record(item)
            record["identity"] = (dataclasses.asdict(result.identity)
                                  | {"text": result.identity.text()})
            record["base"], record["candidate"] = base, candidate
            records.append(record)
    return records


def compare_json(comparison: Comparison, strict: bool = False) -> dict[str, Any]:
    """The document `--json PATH` writes (schema in docs/verdicts.md)."""
    return {"schema": JSON_SCHEMA, "command": "compare", "alpha": comparison.alpha,
            "min_change_pts": comparison.min_change,
            "max_slowdown_pct": comparison.max_slowdown, "tests": comparison.tests,
            "base": comparison.base, "candidate": comparison.candidate,
            "verdicts": verdict_entries(comparison.results, comparison.base,
                                        comparison.candidate),
            "lost": comparison.lost,
            "not_compared": comparison.not_compared, "notes": comparison.notes,
            "scope": comparison.scope,
            "exit_code": comparison.exit_code(strict)}


def check_json_path(path: Path | None) -> None:
    """Before any work: --json names a file that can be written, in an existing folder,
    outside every result set and outside `runs/` (check_output_path), so nothing is
    computed for a JSON that could not be written, and no set file is ever replaced."""
    if path is not None:
        check_output_path("--json", path, in_existing_folder=True)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """The document as indented JSON, written atomically (no half-written file on a crash)."""
    atomic_write(Path(path), json.dumps(document, indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------- trend


def _mean_sd(estimate: stats.SideEstimate | None, step: bool) -> str:
    if estimate is None:
        return ""
    if step:
        return f"{math.exp(estimate.mean):.1f}"
    sd = f" ± {math.sqrt(estimate.spread_var):.1f}" if estimate.n > 1 else ""
    return f"{estimate.mean:.1f}{sd}"


def _step_shown(row: dict[str, Any]) -> str:
    """The uncontended runs' step time, and how many contended runs it leaves out."""
    left_out, step = row["step_contended"], row["step"]
    if not left_out:
        return _mean_sd(step, True)
    note = f"({contended_note(left_out, step is not None)})"
    return note if step is None else f"{_mean_sd(step, True)} {note}"


def trend_text(trend: Trend, fmt: str = "github") -> str:
    """The trend table (per variant and release) and, per variant, its first change. With
    releases of several Keras backends the first column is `release` ('TF 2.21.0', 'jax
    0.10.2') and a line says that between backends only the statistics apply."""
    shown = _escaper(fmt)
    mixed = len({row["backend"] for row in trend_rows(trend)}) > 1
    rows = [{"variant": row["variant"],
             **({"release": release_name(row["release"])} if mixed else {"TF": row["release"]}),
             "Keras": row["keras_version"],
             "n": f"{row['n']}{' DUPLICATE' if row['duplicate'] else ''}",
             "test acc % (mean ± sd)": _mean_sd(row["accuracy"], False),
             "step ms": _step_shown(row),
             "numerics vs previous": row["numerics"],
             "accuracy vs previous": row["accuracy_verdict"],
             "step time vs previous": row["step_verdict"]} for row in trend_rows(trend)]
    variants = variant_order(r["variant"] for r in rows)
    lines = [*map(shown, trend.scope), "",
             tabulate([{key: shown(value) for key, value in row.items()} for row in rows],
                      headers="keys", tablefmt="github" if fmt == "github" else "plain",
                      disable_numparse=True), ""]
    if len(trend.releases) == 1:
        lines.append(f"one release ({shown(release_name(trend.releases[0].version))}): "
                     "no trend")
    else:
        lines.append("releases in order: "
                     + shown(' < '.join(r.version for r in trend.releases))
                     + f"; each compared with the one before ({trend.tests} tests, Holm, "
                       f"alpha {trend.alpha:g}; rule in docs/verdicts.md)")
        for variant in variants:
            first = trend.first_change(variant)
            lines.append(shown(f"{variant}: ") + (
                f"first change at {shown(release_name(first[0]))} ({', '.join(first[1])})"
                if first else "no release changed accuracy or step time "
                              "(regression/improvement)"))
            changed = [f"{release_name(after)} ({identity.text()})"
                       for after, identity in trend.numerics_changes(variant)]
            if changed:
                lines.append(shown(f"{variant}: numerics changed at " + "; ".join(changed)))
    if trend.duplicates:
        lines.append("DUPLICATE seeds (--allow-duplicates; counted twice): "
                     + shown(", ".join(dup.text() for dup in trend.duplicates)))
    if mixed:
        lines.append("Keras backends differ between releases: numerics are not comparable "
                     "across backends (no identity check), only the statistics apply")
    lines += map(shown, trend.notes)
    return "\n".join(lines)


def trend_json(trend: Trend) -> dict[str, Any]:
    """The document `trend --json PATH` writes (schema in docs/verdicts.md)."""
    by_version = {release.version: release.info() for release in trend.releases}
    verdicts = [entry for step in trend.steps
                for entry in verdict_entries(step.results, by_version[step.before],
                                             by_version[step.after])]
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
    per-seed test accuracies (%) and uncontended step times (ms), and where its numerics
    changed."""
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
            timed = uncontended(ok)  # as the step-time verdicts (trend_rows)
            data["step"].append(list(timed["step_time_ms"].dropna().astype(float)))
        changed = {after for after, _ in trend.numerics_changes(variant)}
        data["changed"] = [position[v] for v in changed if position[v] in data["x"]]
        series[variant] = data
    return series


def trend_plot(trend: Trend, out: Path) -> list[Path]:
    """trend.png/.pdf: accuracy and step time over releases (catsdogs.report.figures)."""
    from catsdogs.report.canvas import save_figure
    from catsdogs.report.figures import draw_trend

    runs = pd.concat([release.side.runs for release in trend.releases], ignore_index=True)
    figure = draw_trend([release_name(r.version) for r in trend.releases], trend_series(trend),
                        runs)
    return save_figure(figure, out, "trend")

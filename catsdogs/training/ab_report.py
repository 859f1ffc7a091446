"""What `catsdogs ab` writes: the table, the --json document and the record with provenance.

The record (`<UTC time>_<base>_vs_<candidate>.json`, in <results dir>/ab/ or beside
--json) holds everything: the verdicts, both sides' provenance as their workers
collected it (software, device, host, commit, data fingerprint), the coordinator's
machine and its load, every burst's step times and the workers' last log lines. It is
written once and never overwritten, and it never goes into a result set (those are
append-only, and an A/B record is no run).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from catsdogs.resultset.outputs import check_output_path
from catsdogs.training import machine
from catsdogs.training.ab import (
    EARLY_LEVEL,
    LEVEL,
    ROLES,
    SIDES,
    ABResult,
    VariantResult,
)

SCHEMA = "catsdogs-ab/1"
RECORD_SCHEMA = "catsdogs-ab-record/1"
#: Provenance fields shown for each side in --json (the record keeps all of them).
SIDE_FACTS = ("tf_version", "keras_version", "backend", "jax_version", "torch_version",
              "python_version", "cuda_version", "cudnn_version", "device", "gpu_name", "host",
              "git_commit")


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Where this session writes, decided and checked before any side starts."""

    json: Path | None
    record: Path


# ---------------------------------------------------------------- where, checked first


def plan_outputs(json_path: Path | None, results_dir: str, labels: tuple[str, str],
                 now: dt.datetime | None = None) -> Outputs:
    """The --json path and the record's, through the check every output passes
    (check_output_path): refused (one line) when a folder is missing or cannot be
    written, or when either would lie inside a result set or among the sets of `runs/`.
    The record goes beside --json (the same folder, so that check covers it), else into
    <results dir>/ab/."""
    if json_path is not None:
        json_path = check_output_path("--json", json_path, in_existing_folder=True)
        folder = json_path.parent
    else:
        folder = check_output_path("--results-dir", Path(results_dir) / "ab", folder=True)
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Outputs(json_path, folder / f"{stamp}_{labels[0]}_vs_{labels[1]}.json")


# ---------------------------------------------------------------- the documents


def _number(value: float) -> float | None:
    """JSON has no NaN: an unknown number is null."""
    return None if value is None or not math.isfinite(value) else float(value)


def reason(result: VariantResult, max_slowdown: float) -> str:
    """The verdict in words: where the interval lies against the thresholds, and why
    measuring stopped."""
    est, up = result.estimate, 1 + max_slowdown / 100
    if est.pairs < 2:
        return f"{est.pairs} pair(s): no interval ({result.stopped}); give a longer --budget"
    where = {"regression": f"lies above x{up:.3f}",
             "improvement": f"lies below x{1 / up:.3f}",
             "unchanged": f"lies inside x{1 / up:.3f} to x{up:.3f}"}.get(
        est.verdict, f"reaches across x{1 / up:.3f} or x{up:.3f}; a longer --budget or a "
                     "quieter machine would narrow it")
    return (f"the {est.level:.0%} interval x{est.low:.4f} to x{est.high:.4f} {where} "
            f"({est.pairs} pairs, {result.stopped})")


def verdict_entry(result: VariantResult, max_slowdown: float) -> dict[str, Any]:
    """One variant of the --json document's `verdicts`."""
    from catsdogs.models import get_variant

    est = result.estimate
    return {"variant": result.variant, "alias": get_variant(result.variant).alias,
            "ratio": _number(est.ratio), "low": _number(est.low), "high": _number(est.high),
            "level": est.level, "verdict": est.verdict, "pairs": est.pairs,
            "bursts_per_side": len(result.measured(0)), "burst_steps": result.burst_steps,
            "spread_log": _number(est.spread),
            "spread_pct": _number(100 * math.expm1(est.spread)),
            "detectable": _number(est.detectable), "threshold": 1 + max_slowdown / 100,
            "base_step_ms": _number(result.step_ms(0)),
            "candidate_step_ms": _number(result.step_ms(1)),
            "params_total": result.params.get("params_total"),
            "stopped": result.stopped, "elapsed_s": round(result.elapsed_s, 3),
            "reason": reason(result, max_slowdown)}


def _side(result: ABResult, index: int) -> dict[str, Any]:
    env, start = result.environments[index], result.starts[index]
    facts = start.get("environment", {})
    return {"spec": env.spec, "python": env.python, "tox_env": env.tox_env,
            "variables": env.variables, **{key: facts.get(key, "") for key in SIDE_FACTS}}


def to_json(result: ABResult, outputs: Outputs, strict: bool = False) -> dict[str, Any]:
    """The --json document (schema in docs/verdicts.md)."""
    settings = result.settings
    return {"schema": SCHEMA, "command": "ab", "started_utc": result.started_utc,
            "max_slowdown_pct": settings.max_slowdown, "level": LEVEL,
            "early_level": EARLY_LEVEL, "budget_min": settings.budget_s / 60,
            "max_pairs": settings.max_pairs,
            **{name: _side(result, i) for i, name in enumerate(SIDES)},
            "data": result.starts[0].get("data", {}),
            "verdicts": [verdict_entry(v, settings.max_slowdown) for v in result.variants],
            "strict": strict, "exit_code": result.exit_code(strict),
            "record": str(outputs.record)}


def to_record(result: ABResult, outputs: Outputs, command: list[str],
              strict: bool = False) -> dict[str, Any]:
    """The record: the --json document, both sides' full provenance, the machine, every
    burst, and the workers' last log lines."""
    return {**to_json(result, outputs, strict), "schema": RECORD_SCHEMA,
            "command_line": command, "machine": result.machine,
            "provenance": {name: result.starts[i].get("environment", {})
                           for i, name in enumerate(SIDES)},
            "bursts": {v.variant: [{"side": SIDES[b.side], "warmup": b.warmup,
                                    "started_s": round(b.started_s, 4),
                                    "seconds": round(b.seconds, 4), "step_ms": b.step_ms}
                                   for b in v.bursts] for v in result.variants},
            "worker_log_tail": {name: list(result.log_tails[i])
                                for i, name in enumerate(SIDES)}}


def write_outputs(result: ABResult, outputs: Outputs, command: list[str],
                  strict: bool = False) -> Outputs:
    """The record (a new file, never over another: a name taken in the same second gets
    -2, -3, ...), then --json (replaced atomically). Returns where they went."""
    from catsdogs.fsutil import atomic_write, write_new_file

    outputs.record.parent.mkdir(parents=True, exist_ok=True)
    stem, attempt = outputs.record.stem, 1
    while True:
        text = json.dumps(to_record(result, outputs, command, strict), indent=2,
                          allow_nan=False, default=str) + "\n"
        try:
            write_new_file(outputs.record, text)
            break
        except FileExistsError:
            attempt += 1
            outputs = dataclasses.replace(
                outputs, record=outputs.record.with_name(f"{stem}-{attempt}.json"))
    if outputs.json is not None:
        atomic_write(outputs.json, json.dumps(to_json(result, outputs, strict), indent=2,
                                              allow_nan=False, default=str) + "\n")
    return outputs


# ---------------------------------------------------------------- the table


def _side_line(result: ABResult, index: int) -> str:
    side = _side(result, index)
    variables = " ".join(f"{k}={v}" for k, v in result.environments[index].variables.items()
                         if k not in ("PATH", "VIRTUAL_ENV") and not k.startswith("TOX_"))
    backend = side.get("backend") or "tensorflow"
    software = (f"TF {side['tf_version'] or '?'}" if backend == "tensorflow"
                else f"{backend} {side.get(backend + '_version') or '?'}")
    return (f"{ROLES[index]:<9} {side['spec']}: {software}, Keras "
            f"{side['keras_version'] or '?'}, Python {side['python_version'] or '?'}, "
            f"{side['device'] or '?'}" + (f" [{variables}]" if variables else ""))


def scope_lines(result: ABResult) -> list[str]:
    """The data both sides trained on, and what makes these step times special."""
    data = result.starts[0].get("data", {})
    official = "official" if data.get("fingerprint_known") else "NOT the official set"
    lines = [f"data: {data.get('dataset')} ({official}, fingerprint "
             f"{str(data.get('fingerprint', ''))[:12]}), {data.get('n_train')} training "
             f"images, --limit {data.get('limit') or 'none'}, batch {data.get('batch_size')},"
             f" seed {data.get('seed')}",
             f"machine {machine.summary(result.machine)} (host {result.machine.get('host')})"]
    if data.get("dataset") == "synthetic":
        lines.append("warning: synthetic data (labelled so in the record)")
    if data.get("weights") == "none" and any(v.variant == "transfer_mobilenetv2"
                                             for v in result.variants):
        lines.append("warning: model4 without pretrained weights (--weights none): its "
                     "MobileNetV2 base trains from scratch, not the post's frozen base")
    if (data.get("n_train") or 0) < (data.get("batch_size") or 0):
        lines.append(f"warning: {data.get('n_train')} training images, fewer than the batch "
                     f"size {data.get('batch_size')}: every step trains a smaller batch")
    return lines


def render_text(result: ABResult, outputs: Outputs) -> str:
    """The table per variant (ratio, interval, bursts x steps, spread, verdict), the
    reasons, and where the record is."""
    from tabulate import tabulate

    from catsdogs.models import get_variant

    rows = []
    for v in result.variants:
        est = v.estimate
        rows.append([f"{v.variant} ({get_variant(v.variant).alias})",
                     f"x{est.ratio:.4f}", f"x{est.low:.4f} to x{est.high:.4f}",
                     f"{len(v.measured(0))}+{len(v.measured(1))} x {v.burst_steps}",
                     f"{100 * math.expm1(est.spread):.1f}%", f"x{est.detectable:.3f}",
                     est.verdict])
    headers = ["variant", "CANDIDATE/BASE", f"{LEVEL:.0%} interval", "bursts x steps",
               "pairs sd", "detectable", "verdict"]
    settings = result.settings
    lines = [_side_line(result, 0), _side_line(result, 1), *scope_lines(result),
             f"rule: regression when the whole {LEVEL:.0%} interval is above "
             f"x{1 + settings.max_slowdown / 100:.3f} (--max-slowdown "
             f"{settings.max_slowdown:g}%), unchanged when it is inside +-that", "",
             tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    lines += [f"{v.variant}: {v.estimate.verdict}: {reason(v, settings.max_slowdown)}; "
              f"step {v.step_ms(0):.1f} ms base, {v.step_ms(1):.1f} ms candidate"
              for v in result.variants]
    lines.append(f"record: {outputs.record}")
    return "\n".join(lines)

"""Whose step times may be compared: runs on one machine, none of them contended.

A step time is a property of the software AND the machine it ran on: the same release,
seed and data trained 26 times faster on an AVX-512 CPU than on an AVX2 one, and a run
beside two CPU-bound processes is slower for reasons no release explains. So before a
step-time verdict, `speed_rule` decides from the runs' recorded machines (the
`machine_fingerprint` column; the facts behind it in each set's environment.json) and
contention (the `contended` column) whether one may be given at all:

- every run on both sides must carry the same machine fingerprint; otherwise the verdict
  is `not comparable: different machines (<the facts that differ>)`, or, for runs
  written before machines were recorded, `not comparable: machine not recorded (...)`.
  `allow_different_machines` (--allow-different-machines) compares them anyway, and the
  reasons and the scope say so;
- contended runs are left out of the verdict, and the reasons say how many.

The same facts explain a divergence: runs that part on different machines are not
expected to be bit-identical (other CPU features, other kernels), so `differences` is
what the identity line names. This module decides and returns data; the verdict modules
put it into their verdicts, the renderers print it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from catsdogs.constants import ALLOW_DIFFERENT_MACHINES as ALLOW
from catsdogs.errors import ResultsError
from catsdogs.resultset.load import SOURCE, read_environment
from catsdogs.resultset.schema import ENVIRONMENT_JSON, is_missing
from catsdogs.training.contention import CONTENDED_SHARE
from catsdogs.training.machine import (
    FINGERPRINT_FACTS,
    KERNEL_FACTS,
    NOT_RECORDED,
    differences,
    summary,
)

NOT_COMPARABLE = "not comparable"
#: How a contended run is named wherever it is marked.
CONTENDED_TEXT = (f"other processes and the hypervisor took more than {CONTENDED_SHARE:.0%} "
                  "of its CPUs while it trained")


@dataclasses.dataclass
class SpeedRule:
    """Whether a step-time verdict may be given between two sides' runs of one variant.

    `allowed`: a verdict may be given (over the runs in `keep`); else `reason` is the
    step-time line. `differences`: the machine facts that differ between the sides ([]
    on one machine, or when not recorded), `kernel_differences` those that change
    numerics. `notes`: what the verdict's reasons must say (contended runs left out;
    machines allowed to differ)."""

    allowed: bool
    reason: str | None
    differences: list[str]
    keep: set[tuple[str, str]]  # (source, run_id) of the runs whose step times count
    notes: list[str] = dataclasses.field(default_factory=list)
    across_machines: bool = False  # compared across machines (allowed by the flag)
    #: The differences that change numerics (machine.KERNEL_FACTS): what a divergence
    #: across these machines is named with; [] when only speed facts differ.
    kernel_differences: list[str] = dataclasses.field(default_factory=list)


@functools.lru_cache(maxsize=256)
def _environment_machine(source: str) -> dict[str, Any]:
    """environment.json's `machine` of the set read from `source` ({} when none)."""
    try:
        machine = read_environment(Path(source) / ENVIRONMENT_JSON).get("machine")
    except ResultsError:
        return {}
    return machine if isinstance(machine, dict) else {}


def machine_of(run: Any) -> dict[str, Any] | None:
    """The facts of the machine a run trained on, from its set's environment.json; None
    when the run records no machine, {} when its set has no facts for that fingerprint
    (an xdist worker that saw fewer GPUs than its controller, which wrote the file)."""
    fingerprint = run.get("machine_fingerprint")
    if is_missing(fingerprint) or not fingerprint:
        return None
    facts = _environment_machine(str(run[SOURCE])) if SOURCE in run else {}
    return facts if facts.get("fingerprint") == fingerprint else {}


def fingerprints(runs: pd.DataFrame) -> list[str]:
    """The distinct machine fingerprints of these runs, NOT_RECORDED for runs without."""
    if "machine_fingerprint" not in runs.columns:
        return [NOT_RECORDED] if len(runs) else []
    values = [NOT_RECORDED if is_missing(v) or not v else str(v)
              for v in runs["machine_fingerprint"]]
    return list(dict.fromkeys(values))


def _facts_by_fingerprint(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _, run in runs.iterrows():
        facts = machine_of(run)
        if facts is not None and facts:
            found.setdefault(facts["fingerprint"], facts)
    return found


def machine_differences(base: pd.DataFrame, candidate: pd.DataFrame,
                        keys: tuple[str, ...] = FINGERPRINT_FACTS) -> list[str]:
    """What differs between the machines of two sides' runs: the facts among `keys`, when
    each side ran on one machine whose facts are recorded; else the fingerprints of each
    side. [] when all runs share one machine or a side records none."""
    b_prints, c_prints = fingerprints(base), fingerprints(candidate)
    if NOT_RECORDED in b_prints + c_prints or len(set(b_prints + c_prints)) <= 1:
        return []
    facts = _facts_by_fingerprint(pd.concat([base, candidate], ignore_index=True))
    if len(b_prints) == len(c_prints) == 1 and b_prints[0] in facts and c_prints[0] in facts:
        found = differences(facts[b_prints[0]], facts[c_prints[0]], keys)
        if found or keys != FINGERPRINT_FACTS:
            return found
    return [f"machines {', '.join(b_prints)} (base) vs {', '.join(c_prints)} (candidate)"]


def _unrecorded(runs: pd.DataFrame) -> int:
    """How many of these runs record no machine."""
    if "machine_fingerprint" not in runs.columns:
        return len(runs)
    return int(runs["machine_fingerprint"].map(lambda v: is_missing(v) or not v).sum())


def _not_recorded(base: pd.DataFrame, candidate: pd.DataFrame) -> str:
    """'base 3 of 3 run(s), candidate 1 of 2 run(s)': which runs record no machine."""
    return ", ".join(f"{label} {_unrecorded(runs)} of {len(runs)} run(s)"
                     for label, runs in (("base", base), ("candidate", candidate))
                     if _unrecorded(runs))


def contended(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs flagged contended when they were recorded."""
    if "contended" not in runs.columns:
        return runs.iloc[0:0]
    return runs[runs["contended"].map(lambda value: value is True)]


def uncontended(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs not flagged contended: the only ones whose step times measure the code and
    not the load, so every step time shown beside a verdict comes from these."""
    return runs.drop(index=contended(runs).index)


def contended_note(left_out: int, any_timed: bool) -> str:
    """'2 contended left out', or 'all 3 contended' when no run was left to time: how every
    table and figure beside a step time says which runs it did not time."""
    return f"{left_out} contended left out" if any_timed else f"all {left_out} contended"


def run_keys(runs: pd.DataFrame) -> set[tuple[str, str]]:
    """(source, run_id) of each run: how compare's step_estimate is told which runs to use."""
    return {(str(run[SOURCE]), str(run["run_id"])) for _, run in runs.iterrows()}


def speed_rule(base: pd.DataFrame, candidate: pd.DataFrame,
               allow_different_machines: bool = False) -> SpeedRule:
    """The decision for one variant, from each side's ok runs (see the module doc)."""
    differ = machine_differences(base, candidate)
    kernel = machine_differences(base, candidate, KERNEL_FACTS)
    missing = _not_recorded(base, candidate)
    notes: list[str] = []
    if (differ or missing) and not allow_different_machines:
        reason = (f"{NOT_COMPARABLE}: different machines ({'; '.join(differ)})" if differ
                  else f"{NOT_COMPARABLE}: machine not recorded ({missing}; sets written "
                       "before catsdogs recorded machines)")
        return SpeedRule(False, f"{reason}; pass {ALLOW} to compare them anyway", differ, set(),
                         kernel_differences=kernel)
    if differ:
        notes.append(f"across different machines ({ALLOW}): {'; '.join(differ)}")
    elif missing:
        notes.append(f"machine not recorded ({missing}), compared anyway ({ALLOW})")
    b_busy, c_busy = contended(base), contended(candidate)
    keep = run_keys(uncontended(base)), run_keys(uncontended(candidate))
    if len(b_busy) + len(c_busy):
        notes.append(f"{len(b_busy) + len(c_busy)} contended run(s) left out (base "
                     f"{len(b_busy)}, candidate {len(c_busy)}): {CONTENDED_TEXT}")
    for label, runs, kept in (("base", base, keep[0]), ("candidate", candidate, keep[1])):
        if len(runs) and not kept:
            return SpeedRule(False, f"{NOT_COMPARABLE}: every {label} run was contended "
                                    f"({CONTENDED_TEXT})", differ, set(), notes,
                             kernel_differences=kernel)
    return SpeedRule(True, None, differ, keep[0] | keep[1], notes,
                     across_machines=bool(differ or missing), kernel_differences=kernel)


def scope_warnings(rules: Iterable[SpeedRule]) -> list[str]:
    """The scope line every output prints when step times were compared across machines."""
    if any(rule.across_machines for rule in rules):
        return [f"warning: step times compared across different or unrecorded machines "
                f"({ALLOW}): a speed-up or slow-down may be the machine's"]
    return []


def contended_warning(runs: pd.DataFrame) -> list[str]:
    """'CONTENDED: 2 run(s) (baseline_cnn seed 0, ...): ...' for the warnings of every
    report, table and verdict; [] when no run is contended."""
    busy = contended(runs)
    if busy.empty:
        return []
    names = [f"{row['variant']} seed {row['seed']}" for _, row in busy.head(4).iterrows()]
    more = f" +{len(busy) - 4} more" if len(busy) > 4 else ""
    return [f"CONTENDED: {len(busy)} run(s) ({', '.join(names)}{more}): {CONTENDED_TEXT}; "
            "their step times measure the load too, and speed verdicts leave them out"]


def machine_lines(runs: pd.DataFrame) -> list[str]:
    """One provenance line per machine these runs trained on (`machine.summary`), and
    'not recorded' for runs of sets written before machines were recorded."""
    facts = _facts_by_fingerprint(runs)
    return [summary(facts.get(fp)) if fp in facts else
            (NOT_RECORDED if fp == NOT_RECORDED else f"{fp} (facts not in environment.json)")
            for fp in fingerprints(runs)]

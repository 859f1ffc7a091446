"""How much of its CPUs a run had to itself, epoch by epoch, as the operating system counts it.

A step time taken while other processes used the cores measures the load as much as the
software (the committed TF 2.18.1 sets trained beside another training, and nothing in
them said so). So each epoch records three CPU times beside its wall time:

- `process_cpu_s`: this process's own CPU time (user + system, all threads; os.times());
  divided by the wall time it is the number of cores the training actually used;
- `other_cpu_s`: the CPU time every other process used on the CPUs this process may run
  on (busy time of those CPUs, minus ours);
- `steal_s`: time the hypervisor gave those CPUs to other virtual machines.

Busy and steal time per CPU come from psutil.cpu_times(percpu=True), which reads
/proc/stat on Linux and the equivalent elsewhere (no steal there: 0), so there is no
per-OS parsing here. A run's `contention` is the share of its CPUs' capacity (usable CPUs
x wall time) that others and steal took over the epochs its step time comes from (2..N,
or the only one); above CONTENDED_SHARE the run is `contended` (docs/verdicts.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import Any, Mapping

#: A run is contended when others and steal took more than this share of the capacity
#: of its usable CPUs over its timed epochs: a quarter of a 2-CPU machine is half a core,
#: far above what a shell, the kernel and a monitor take, and below what one CPU-bound
#: process beside the training takes.
CONTENDED_SHARE = 0.25
#: The per-epoch columns this module fills (epochs.csv, schema 3).
EPOCH_FIELDS = ("process_cpu_s", "other_cpu_s", "steal_s")


@dataclasses.dataclass(frozen=True)
class Sample:
    """Counters at one moment: this process's CPU time, and the busy and steal time of
    the CPUs it may use (seconds since some fixed start; the epoch's wall time is the
    step timer's)."""

    process_cpu: float
    busy: float | None  # None where the platform cannot tell
    steal: float | None


def busy_and_steal(per_cpu: Sequence[Any], cpus: Iterable[int]) -> tuple[float, float]:
    """Busy and steal seconds summed over `cpus`, from per-CPU times (psutil's scputimes
    or anything with its fields). Busy is user + nice + system + irq + softirq: Linux
    already counts guest time inside user, and idle and iowait are not busy."""
    busy = steal = 0.0
    for cpu in cpus:
        if not 0 <= cpu < len(per_cpu):
            continue
        times = per_cpu[cpu]
        busy += sum(getattr(times, field, 0.0) for field in ("user", "nice", "system", "irq",
                                                             "softirq"))
        steal += getattr(times, "steal", 0.0)
    return busy, steal


def _per_cpu_times() -> Sequence[Any] | None:
    try:
        import psutil

        return psutil.cpu_times(percpu=True)
    except Exception:  # psutil missing or the counters unreadable: contention unknown
        return None


def take_sample(cpus: Iterable[int], per_cpu: Sequence[Any] | None = None,
                process_cpu: float | None = None) -> Sample:
    """The counters now, for the CPUs `cpus`; arguments replace what the OS would be
    asked (tests pass stand-ins)."""
    if process_cpu is None:
        times = os.times()
        process_cpu = times.user + times.system
    per_cpu = _per_cpu_times() if per_cpu is None else per_cpu
    if per_cpu is None:
        return Sample(process_cpu, None, None)
    busy, steal = busy_and_steal(per_cpu, cpus)
    return Sample(process_cpu, busy, steal)


def epoch_usage(start: Sample, end: Sample) -> dict[str, float | None]:
    """The three CPU times of the span from `start` to `end`. /proc/stat counts in clock
    ticks and our own time more precisely, so others' time can come out a tick below
    zero on an idle machine: it is clamped at 0."""
    own = max(0.0, end.process_cpu - start.process_cpu)
    if start.busy is None or end.busy is None:
        return {"process_cpu_s": _ms(own), "other_cpu_s": None, "steal_s": None}
    return {"process_cpu_s": _ms(own),
            "other_cpu_s": _ms(max(0.0, (end.busy - start.busy) - own)),
            "steal_s": _ms(max(0.0, end.steal - start.steal))}


def _ms(seconds: float) -> float:
    """Rounded to the millisecond: the counters tick in 10 ms, and the differences of
    their large totals would otherwise be written as 1.3599999999998635."""
    return round(seconds, 3)


def timed_epochs(epochs: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The epochs a run's step time comes from: 2..N, or the only one."""
    return epochs[1:] if len(epochs) > 1 else epochs


def run_contention(epochs: Sequence[Mapping[str, Any]], cpus_usable: int | None
                   ) -> tuple[float | None, bool | None]:
    """(share of the usable CPUs' capacity that others and steal took over the timed
    epochs, whether that is above CONTENDED_SHARE); (None, None) when unknown."""
    timed = timed_epochs(epochs)
    if not timed or not cpus_usable or any(e.get("other_cpu_s") is None for e in timed):
        return None, None
    capacity = cpus_usable * sum(float(e["epoch_s"]) for e in timed)
    if capacity <= 0:
        return None, None
    taken = sum(float(e["other_cpu_s"]) + float(e.get("steal_s") or 0.0) for e in timed)
    share = min(1.0, taken / capacity)  # clock-tick rounding can pass 1 by a hair
    return share, share > CONTENDED_SHARE

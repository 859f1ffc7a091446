"""Contention per epoch: the CPU time this process, other processes and the hypervisor took,
from stand-in counters and from the real ones with a real CPU-bound neighbour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from catsdogs.training import contention


def _cpu(user=0.0, nice=0.0, system=0.0, idle=0.0, iowait=0.0, irq=0.0, softirq=0.0,
         steal=0.0):
    """One CPU's times, with psutil's field names."""
    return SimpleNamespace(user=user, nice=nice, system=system, idle=idle, iowait=iowait,
                           irq=irq, softirq=softirq, steal=steal)


def test_busy_and_steal_count_only_the_usable_cpus_and_not_idle_time():
    per_cpu = [_cpu(user=10, nice=1, system=2, idle=50, iowait=7, irq=0.5, softirq=0.5,
                    steal=3), _cpu(user=100, steal=40)]
    assert contention.busy_and_steal(per_cpu, [0]) == (14.0, 3.0)
    assert contention.busy_and_steal(per_cpu, [0, 1]) == (114.0, 43.0)
    assert contention.busy_and_steal(per_cpu, [5]) == (0.0, 0.0)  # offline or unknown CPU


def test_an_epochs_usage_is_others_busy_time_minus_ours_clamped():
    start = contention.take_sample([0, 1], per_cpu=[_cpu(user=10), _cpu(user=10)],
                                   process_cpu=5.0)
    end = contention.take_sample([0, 1], per_cpu=[_cpu(user=13, steal=0.5), _cpu(user=12)],
                                 process_cpu=7.5)
    assert contention.epoch_usage(start, end) == {"process_cpu_s": 2.5, "other_cpu_s": 2.5,
                                                  "steal_s": 0.5}
    ticked = contention.take_sample([0, 1], per_cpu=[_cpu(user=11), _cpu(user=11)],
                                    process_cpu=7.01)  # /proc/stat a tick behind os.times()
    assert contention.epoch_usage(start, ticked)["other_cpu_s"] == 0.0
    unknown = contention.Sample(1.0, None, None)
    assert contention.epoch_usage(unknown, unknown)["other_cpu_s"] is None


def _epochs(*others: float, wall: float = 10.0, steal: float = 0.0) -> list[dict]:
    return [{"epoch_s": wall, "other_cpu_s": other, "steal_s": steal} for other in others]


def test_a_run_is_contended_above_the_share_over_its_timed_epochs():
    cpus = 2  # capacity of each 10 s epoch: 20 CPU-seconds
    limit = contention.CONTENDED_SHARE * 2 * 10
    share, flagged = contention.run_contention(_epochs(99.0, limit, limit), cpus)
    assert share == pytest.approx(contention.CONTENDED_SHARE) and flagged is False  # epoch 1 out
    share, flagged = contention.run_contention(_epochs(0.0, limit + 0.2, limit + 0.2), cpus)
    assert flagged is True and share > contention.CONTENDED_SHARE
    assert contention.run_contention(_epochs(0.0, 1.0, steal=limit), cpus)[1] is True  # steal
    assert contention.run_contention(_epochs(limit * 2), cpus)[1] is True  # one epoch: itself
    assert contention.run_contention(_epochs(0.0, None), cpus) == (None, None)  # not measured
    assert contention.run_contention(_epochs(0.0, 50.0), cpus)[0] == 1.0  # never above 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_a_busy_neighbour_on_our_cpu_shows_as_others_time():
    """The real counters: a CPU-bound process pinned to CPU 0 while this one sleeps shows
    as about its run time of others' CPU time on CPU 0, and as none of ours."""
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    child = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", spin])
    try:
        time.sleep(0.2)  # let it start
        start = contention.take_sample([0])
        time.sleep(1.0)
        usage = contention.epoch_usage(start, contention.take_sample([0]))
    finally:
        child.wait()
    assert usage["process_cpu_s"] < 0.1
    assert usage["other_cpu_s"] > 0.5  # it had CPU 0 for most of that second

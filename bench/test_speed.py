"""The speed benchmark as a pytest benchmark, opt-in: `pytest bench -k speed --benchmark-only`
(or `-m speed`); a plain `pytest bench` leaves it out.

The same measurement as `catsdogs speed` (catsdogs.training.speed), with the session's options
(--data-dir, --limit, --variants, --seeds: its first seed, --batch-size, ...); the number
of timed epochs comes from CATSDOGS_SPEED_EPOCHS (default 2, as `--speed-epochs`). Run
once (`pedantic`, rounds=1): every figure goes into `benchmark.extra_info`, so
`--benchmark-json` and `--benchmark-autosave` keep them, and the table is printed at the
end of the test.
"""

from __future__ import annotations

import math

import pytest

from catsdogs.options import resolve_one
from catsdogs.training.speed import measure_speed, render_speed


@pytest.mark.speed
def test_speed(benchmark, request, capsys, bench_state):
    if getattr(request.config, "workerinput", None) is not None:
        pytest.skip("speed figures need the machine to themselves: run "
                    "`pytest bench -k speed` without -n")
    epochs = resolve_one("speed_epochs")  # CATSDOGS_SPEED_EPOCHS, checked by the registry
    figures = benchmark.pedantic(measure_speed, args=(bench_state.options,),
                                 kwargs={"progress": bench_state.reporter.line, "epochs": epochs},
                                 rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(figures)
    with capsys.disabled():
        print("\n" + render_speed(figures))

    numbers = {key: value for key, value in figures.items() if isinstance(value, float)}
    assert numbers and all(math.isfinite(value) for value in numbers.values()), numbers
    rates = {key: value for key, value in numbers.items()
             if key.endswith(("_ips", "_epoch_s", "_cpu_s", "_ratio"))}
    assert all(value > 0 for value in rates.values()), rates

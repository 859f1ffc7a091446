"""What a design (seeds per side, test images, spreads) can detect under compare's rule.

The table in docs/verdicts.md comes from here: it tells a user, before training, how many
seeds a comparison needs to see a change of a given size. Built on the verdict
machinery of catsdogs.stats, so the design and the verdict cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from catsdogs.stats import (
    PAIRED,
    Contrast,
    SideEstimate,
    accuracy_side,
    detectable_change,
    unpaired,
)


def binomial_sd(accuracy: float, n_test: int) -> float:
    """The per-run binomial standard error (points) at this accuracy, as accuracy_side
    computes its floor."""
    k = round(accuracy * n_test)
    return math.sqrt(accuracy_side([k], [n_test]).floor_var)


def smallest_detectable(seeds: int, *, n_test: int = 192, accuracy: float = 0.75,
                        seed_spread: float = 0.0, paired: bool = False,
                        step_spread: float = 0.05, alpha: float = 0.05, tests: int = 8,
                        min_change: float = 1.0, max_slowdown: float = 10.0
                        ) -> tuple[float, float]:
    """(accuracy drop in points, slowdown in percent) that `compare` flags with `seeds`
    per side. Assumptions, all arguments: every run near `accuracy` on n_test images (the
    binomial floor of each run); unpaired, an observed standard deviation over seeds of
    `seed_spread` points on each side; paired, a standard deviation of `seed_spread`
    points of the per-seed drops (the seeds' own spread cancels); a run-to-run relative
    step-time spread of `step_spread` with no epoch floor; K = `tests` tests (4 variants
    x 2 metrics), so the critical p is alpha/K."""
    floor = binomial_sd(accuracy, n_test) ** 2
    if paired:
        contrast = Contrast(PAIRED, (SideEstimate(seeds, 0.0, seed_spread ** 2, 2 * floor),),
                            0.0)
    else:
        side = SideEstimate(seeds, 0.0, seed_spread ** 2, floor)
        contrast = unpaired(side, side)
    drop = detectable_change(contrast, threshold=min_change, alpha=alpha, tests=tests)
    log_side = SideEstimate(seeds, 0.0, math.log1p(step_spread) ** 2, 0.0)
    log_change = detectable_change(unpaired(log_side, log_side),
                                   threshold=math.log1p(max_slowdown / 100), alpha=alpha,
                                   tests=tests)
    return drop, 100 * math.expm1(log_change)


#: Standard deviation (points) of the per-seed drops in the paired column of the table.
TABLE_DROP_SPREAD = 2.0


def smallest_detectable_table(seeds: Sequence[int] = (3, 5, 10), *, n_test: int = 192,
                              accuracy: float = 0.75, step_spreads: Sequence[float] = (0.05, 0.20),
                              alpha: float = 0.05, tests: int = 8) -> list[dict[str, float]]:
    """Rows for docs/verdicts.md: per seed count, the accuracy drop flagged paired by
    seed (drops that agree; drops spread by TABLE_DROP_SPREAD points), unpaired (seeds
    that agree; seeds spread as much as the binomial error), and the slowdown flagged at
    each run-to-run spread."""
    spread = binomial_sd(accuracy, n_test)
    columns = {"drop_pts_paired_spread_0": (True, 0.0),
               f"drop_pts_paired_spread_{TABLE_DROP_SPREAD:g}": (True, TABLE_DROP_SPREAD),
               "drop_pts_unpaired_spread_0": (False, 0.0),
               "drop_pts_unpaired_spread_binomial": (False, spread)}
    rows = []
    for m in seeds:
        row: dict[str, float] = {"seeds": m}
        for key, (paired, seed_spread) in columns.items():
            row[key] = smallest_detectable(m, n_test=n_test, accuracy=accuracy,
                                           seed_spread=seed_spread, paired=paired,
                                           alpha=alpha, tests=tests)[0]
        for step_spread in step_spreads:
            row[f"slowdown_pct_spread_{step_spread:g}"] = smallest_detectable(
                m, step_spread=step_spread, alpha=alpha, tests=tests)[1]
        rows.append(row)
    return rows

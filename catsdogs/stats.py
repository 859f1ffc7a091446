"""Every estimate, test and interval behind `compare` and `trend`, in one place.

Functions here take plain numbers and arrays and return numbers and dataclasses; nothing
reads files or prints. The rule they implement, per variant and metric:

    regression / improvement  the change is beyond the threshold (--min-change points of
                              test accuracy, --max-slowdown percent of step time) AND its
                              Holm-adjusted two-sided p-value is below alpha;
    unchanged                 the (1 - 2 alpha) interval of the change lies inside
                              +- the threshold (two one-sided tests, TOST: shown equivalent);
    inconclusive              neither; `seeds_needed` says how many seeds per side would
                              settle it if the spread stays what it is.

Both metrics use the same difference-of-means machinery (`side` -> `difference` -> `judge`):
a side is m per-run values (one per seed) with a sample variance over seeds and a floor
variance that no run can undercut; the difference of the two means gets a Welch-type t
statistic whose degrees of freedom come from the Welch-Satterthwaite formula.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

#: Seeds per side below which the spread over seeds cannot be estimated: no verdict.
MIN_SEEDS = 2
#: `seeds_needed` looks no further than this many seeds per side.
MAX_SEEDS_SEARCHED = 200
#: Asymptotic variance of a sample median relative to the mean's, for normal data: pi/2.
MEDIAN_EFFICIENCY = math.pi / 2

VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")


# ---------------------------------------------------------------- one side


@dataclasses.dataclass(frozen=True)
class SideEstimate:
    """m per-run values of one metric on one side.

    spread_var: the sample variance over seeds (ddof 1; 0 for one seed), estimated with
    m - 1 degrees of freedom. floor_var: a per-run variance known from the measurement
    itself (binomial for accuracy, epoch-to-epoch for step time), treated as exact.
    The variance of the mean is (spread_var + floor_var) / m: the floor adds to the
    spread, so three seeds that happen to agree never claim zero uncertainty."""

    n: int
    mean: float
    spread_var: float
    floor_var: float

    @property
    def var_of_mean(self) -> float:
        return (self.spread_var + self.floor_var) / self.n

    def scaled(self, n: int) -> SideEstimate:
        """The same per-run variances with n seeds: what more seeds would buy."""
        return dataclasses.replace(self, n=n)


def _spread(values: np.ndarray) -> float:
    return float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


def accuracy_side(correct: Sequence[int], n_test: Sequence[int]) -> SideEstimate:
    """Test accuracy in percentage points from each run's correct count out of n_test.

    A run's accuracy k/n estimates the accuracy on all cats and dogs from n images; if
    training were deterministic its variance would be the binomial p(1 - p)/n. With the
    plug-in p = k/n that is zero at 16/16, so p is taken as (k + 1)/(n + 2), the add-one
    estimate of Agresti and Caffo (1/(n + 2) away from 0 and 1): 16/16 gives a standard
    error of 5.7 points, not 0. The floor is the mean of these per-run variances; the
    observed spread over seeds (training randomness) adds to it."""
    k = np.asarray(correct, dtype=float)
    n = np.asarray(n_test, dtype=float)
    if len(k) == 0 or len(k) != len(n) or np.any(n <= 0) or np.any((k < 0) | (k > n)):
        raise ValueError(f"accuracy_side: expected 0 <= correct <= n_test, n_test > 0, one "
                         f"per run; got correct={list(k)}, n_test={list(n)}")
    points = 100 * k / n
    shrunk = (k + 1) / (n + 2)
    floor = float(np.mean(1e4 * shrunk * (1 - shrunk) / n))
    return SideEstimate(len(k), float(points.mean()), _spread(points), floor)


def step_side(epoch_medians: Sequence[Sequence[float]]) -> SideEstimate:
    """Step time on a log scale from each run's per-epoch median step times (ms).

    A run's value is the log of the median of its per-epoch medians: logs, because
    slowdowns are ratios (x2 is +0.69 whatever the model's speed), and the mean of logs
    over seeds is the log of the geometric mean. The floor is the variance of that run
    median from epoch-to-epoch noise alone: (pi/2) var(log epoch medians) / E for E
    epochs (the large-sample variance of a median), averaged over runs; 0 for a run with
    one epoch. The spread over seeds (a busy machine, a slow run) adds to it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        runs = [np.log(np.asarray(values, dtype=float)) for values in epoch_medians]
    if not runs or any(len(r) == 0 or not np.all(np.isfinite(r)) for r in runs):
        raise ValueError("step_side: expected positive step times, at least one per run; got "
                         f"{[list(values) for values in epoch_medians]}")
    values = np.array([np.median(r) for r in runs])
    floors = [MEDIAN_EFFICIENCY * r.var(ddof=1) / len(r) if len(r) > 1 else 0.0 for r in runs]
    return SideEstimate(len(values), float(values.mean()), _spread(values),
                        float(np.mean(floors)))


# ---------------------------------------------------------------- the difference


@dataclasses.dataclass(frozen=True)
class Difference:
    """candidate mean - base mean, its standard error, Welch-Satterthwaite degrees of
    freedom (inf when only floors carry variance) and the two-sided p of 'no change'."""

    estimate: float
    se: float
    df: float
    p: float

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided `level` interval: estimate +- t_{(1 + level)/2, df} se."""
        half = t_quantile((1 + level) / 2, self.df) * self.se
        return self.estimate - half, self.estimate + half


def t_quantile(q: float, df: float) -> float:
    """Student t quantile; the normal one for infinite df (scipy.special: fast ufuncs)."""
    from scipy.special import ndtri, stdtrit

    return float(ndtri(q) if math.isinf(df) else stdtrit(df, q))


def t_two_sided_p(statistic: float, df: float) -> float:
    """2 P(T > |statistic|) for Student's t with df degrees of freedom (normal if inf)."""
    from scipy.special import ndtr, stdtr

    tail = ndtr(-abs(statistic)) if math.isinf(df) else stdtr(df, -abs(statistic))
    return float(min(1.0, 2 * tail))


def satterthwaite_df(base: SideEstimate, candidate: SideEstimate) -> float:
    """Welch-Satterthwaite: the variance of the difference is a sum of terms a_i with
    degrees of freedom nu_i; df = (sum a_i)^2 / sum(a_i^2 / nu_i). The spread terms
    spread_var/m have m - 1 degrees of freedom; the floors are known (nu = inf, no term
    in the denominator). All spread zero: df = inf, a normal (z) test on the floors."""
    total = base.var_of_mean + candidate.var_of_mean
    denominator = sum((side.spread_var / side.n) ** 2 / (side.n - 1)
                      for side in (base, candidate) if side.n > 1 and side.spread_var > 0)
    return math.inf if denominator == 0 else total ** 2 / denominator


def difference(base: SideEstimate, candidate: SideEstimate) -> Difference:
    """Welch's t for two means with floors added to the variances. Valid at 3 seeds per
    side: its smallest p is not bounded away from 0 the way an exact permutation test's
    is (2/20 = 0.10 at 3 against 3). Zero variance on both sides (only possible when
    both floors are 0): p is 1 for equal means, 0 otherwise."""
    estimate = candidate.mean - base.mean
    se = math.sqrt(base.var_of_mean + candidate.var_of_mean)
    df = satterthwaite_df(base, candidate)
    if se == 0:
        return Difference(estimate, 0.0, df, 1.0 if estimate == 0 else 0.0)
    return Difference(estimate, se, df, t_two_sided_p(estimate / se, df))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: sort ascending, multiply the i-th smallest
    (0-based) by (K - i), and make the sequence non-decreasing. Rejecting adjusted p <
    alpha keeps the chance of any false alarm among the K tests at or below alpha, with
    no assumption about how the tests depend on each other."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


# ---------------------------------------------------------------- the verdict


@dataclasses.dataclass(frozen=True)
class Judgement:
    """The verdict on one difference and everything that explains it.

    interval: the (1 - 2 alpha) interval (the TOST interval that decides `unchanged`);
    NaN with one seed on a side, where the spread over seeds is unknown.
    detectable: the smallest |change| this comparison could have flagged: the larger of
    the threshold and the critical value t_{1 - alpha/(2K)} se of Holm's strictest step.
    seeds_needed: for `inconclusive`, seeds per side that would settle it (None: more
    than MAX_SEEDS_SEARCHED, or unknown)."""

    verdict: str
    p_adjusted: float
    interval: tuple[float, float]
    interval_level: float
    detectable: float
    seeds_needed: int | None
    reasons: tuple[str, ...]


def detectable_change(base: SideEstimate, candidate: SideEstimate, *, threshold: float,
                      alpha: float, tests: int) -> float:
    """The smallest observed |change| the rule flags with these variances: beyond the
    threshold, and with p < alpha / K (Holm's first, strictest step)."""
    se = math.sqrt(base.var_of_mean + candidate.var_of_mean)
    critical = t_quantile(1 - alpha / (2 * tests), satterthwaite_df(base, candidate)) * se
    return max(threshold, critical)


def _settled(estimate: float, base: SideEstimate, candidate: SideEstimate, *,
             threshold: float, alpha: float, tests: int) -> bool:
    """Would this estimate be flagged or shown unchanged with these sides?"""
    if abs(estimate) > detectable_change(base, candidate, threshold=threshold, alpha=alpha,
                                         tests=tests):
        return True
    se = math.sqrt(base.var_of_mean + candidate.var_of_mean)
    half = t_quantile(1 - alpha, satterthwaite_df(base, candidate)) * se
    return abs(estimate) + half < threshold


def seeds_needed(estimate: float, base: SideEstimate, candidate: SideEstimate, *,
                 threshold: float, alpha: float, tests: int) -> int | None:
    """Seeds per side with which the same estimate and per-run variances would give
    `regression`/`improvement` or `unchanged`; None beyond MAX_SEEDS_SEARCHED (an
    estimate right at the threshold needs ever more seeds) or with a one-seed side."""
    if min(base.n, candidate.n) < MIN_SEEDS:
        return None
    for n in range(max(base.n, candidate.n), MAX_SEEDS_SEARCHED + 1):
        if _settled(estimate, base.scaled(n), candidate.scaled(n), threshold=threshold,
                    alpha=alpha, tests=tests):
            return n
    return None


def flagged(estimate: float, p_adjusted: float, *, threshold: float, alpha: float,
            worse_when: int) -> str | None:
    """'regression' or 'improvement' when the change is beyond the threshold and its
    adjusted p below alpha, else None: the part of the rule that can fail a CI job."""
    if p_adjusted < alpha and abs(estimate) > threshold:
        return "regression" if estimate * worse_when > 0 else "improvement"
    return None


def judge(base: SideEstimate, candidate: SideEstimate, diff: Difference, p_adjusted: float,
          *, threshold: float, alpha: float, tests: int, worse_when: int,
          describe: Callable[[float], str]) -> Judgement:
    """Apply the rule (module docstring) to one difference. worse_when is -1 when a
    negative change is worse (accuracy), +1 when a positive one is (step time).
    describe(x) formats a change in the metric's unit for the reasons."""
    level = 1 - 2 * alpha
    low, high = diff.interval(level)
    detectable = detectable_change(base, candidate, threshold=threshold, alpha=alpha,
                                   tests=tests)
    stats_text = (f"p={diff.p:.3g}, Holm p={p_adjusted:.3g} over {tests} tests; "
                  f"{level:.0%} interval {describe(low)} to {describe(high)}")
    if min(base.n, candidate.n) < MIN_SEEDS:
        side = "base" if base.n < MIN_SEEDS else "candidate"
        return Judgement("inconclusive", p_adjusted, (math.nan, math.nan), level, math.nan,
                         None,
                         (f"one {side} seed: the spread over seeds is unknown; run at least "
                          f"{MIN_SEEDS} seeds per side (3 or more recommended)",))
    verdict = flagged(diff.estimate, p_adjusted, threshold=threshold, alpha=alpha,
                      worse_when=worse_when)
    if verdict:
        return Judgement(verdict, p_adjusted, (low, high), level, detectable, None,
                         (f"{describe(diff.estimate)}, beyond "
                          f"{describe(math.copysign(threshold, diff.estimate))} "
                          f"({stats_text})",))
    if -threshold < low and high < threshold:
        return Judgement("unchanged", p_adjusted, (low, high), level, detectable, None,
                         (f"interval inside {describe(-threshold)} to {describe(threshold)} "
                          f"({stats_text})",))
    needed = seeds_needed(diff.estimate, base, candidate, threshold=threshold, alpha=alpha,
                          tests=tests)
    why = ("change beyond the threshold but not significant" if abs(diff.estimate) > threshold
           else "interval reaches beyond the threshold")
    more = (f"about {needed} seeds per side would settle it" if needed
            else f"more than {MAX_SEEDS_SEARCHED} seeds per side would be needed")
    return Judgement("inconclusive", p_adjusted, (low, high), level, detectable, needed,
                     (f"{describe(diff.estimate)}: {why} ({stats_text}); {more}",))


# ---------------------------------------------------------------- what a design can see


def binomial_sd(accuracy: float, n_test: int) -> float:
    """The per-run binomial standard error (points) at this accuracy, as accuracy_side
    computes its floor."""
    k = round(accuracy * n_test)
    return math.sqrt(accuracy_side([k], [n_test]).floor_var)


def smallest_detectable(seeds: int, *, n_test: int = 192, accuracy: float = 0.75,
                        seed_spread: float = 0.0, step_spread: float = 0.05,
                        alpha: float = 0.05, tests: int = 8, min_change: float = 1.0,
                        max_slowdown: float = 10.0) -> tuple[float, float]:
    """(accuracy drop in points, slowdown in percent) that `compare` flags with `seeds`
    per side. Assumptions, all arguments: every run near `accuracy` on n_test images (the
    binomial floor); an observed standard deviation over seeds of `seed_spread` points;
    a run-to-run relative step-time spread of `step_spread` with no epoch floor; K =
    `tests` tests (4 variants x 2 metrics), so the critical p is alpha/K."""
    floor = binomial_sd(accuracy, n_test) ** 2
    side = SideEstimate(seeds, 0.0, seed_spread ** 2, floor)
    drop = detectable_change(side, side, threshold=min_change, alpha=alpha, tests=tests)
    log_side = SideEstimate(seeds, 0.0, math.log1p(step_spread) ** 2, 0.0)
    log_change = detectable_change(log_side, log_side,
                                   threshold=math.log1p(max_slowdown / 100), alpha=alpha,
                                   tests=tests)
    return drop, 100 * math.expm1(log_change)


def smallest_detectable_table(seeds: Sequence[int] = (3, 5, 10), *, n_test: int = 192,
                              accuracy: float = 0.75, step_spreads: Sequence[float] = (0.05, 0.20),
                              alpha: float = 0.05, tests: int = 8) -> list[dict[str, float]]:
    """Rows for docs/verdicts.md: per seed count, the accuracy drop flagged when the seeds
    agree (spread 0) and when they spread as much as the binomial error, and the slowdown
    flagged at each run-to-run spread."""
    spread = binomial_sd(accuracy, n_test)
    rows = []
    for m in seeds:
        row: dict[str, float] = {"seeds": m}
        row["drop_pts_spread_0"] = smallest_detectable(m, n_test=n_test, accuracy=accuracy,
                                                       alpha=alpha, tests=tests)[0]
        row["drop_pts_spread_binomial"] = smallest_detectable(
            m, n_test=n_test, accuracy=accuracy, seed_spread=spread, alpha=alpha,
            tests=tests)[0]
        for step_spread in step_spreads:
            row[f"slowdown_pct_spread_{step_spread:g}"] = smallest_detectable(
                m, step_spread=step_spread, alpha=alpha, tests=tests)[1]
        rows.append(row)
    return rows

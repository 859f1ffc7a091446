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

Both metrics use one machinery (`Contrast` -> `difference` -> `judge`): a set of
per-run values with a sample variance over seeds and a floor variance that no run can
undercut, summed into the variance of the change, with a t statistic whose degrees of
freedom come from the Welch-Satterthwaite formula (floors known, spreads estimated). The
change is analysed `paired` (per-seed differences, when both sides hold the same seeds in
the same configuration: see `paired_accuracy`) or `unpaired` (difference of two means).
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
#: The df of an estimated spread use its upper confidence bound at this level
#: (`satterthwaite_df`): 0.70, i.e. chi2's 30% quantile.
SPREAD_BOUND = 0.70
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
    """Sample variance over seeds (ddof 1), 0 for one seed; values rounded to 1e-9 first
    so that equal changes computed from different counts (75 - 65.1 vs 80.2 - 70.3)
    count as equal, not as a spread of 1e-29 (the mean's rounding) with absurd degrees
    of freedom."""
    rounded = np.round(values, 9)
    return float(np.var(rounded, ddof=1)) if len(values) > 1 and np.ptp(rounded) else 0.0


def accuracy_runs(correct: Sequence[int], n_test: Sequence[int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per run: test accuracy in points and its binomial floor variance (points^2).

    A run's accuracy k/n estimates the accuracy on all cats and dogs from n images; if
    training were deterministic its variance would be the binomial p(1 - p)/n. With the
    plug-in p = k/n that is zero at 16/16, so p is taken as (k + 1)/(n + 2), the add-one
    estimate of Agresti and Caffo (1/(n + 2) away from 0 and 1): 16/16 gives a standard
    error of 5.7 points, not 0."""
    k = np.asarray(correct, dtype=float)
    n = np.asarray(n_test, dtype=float)
    if len(k) == 0 or len(k) != len(n) or np.any(n <= 0) or np.any((k < 0) | (k > n)):
        raise ValueError(f"accuracy_side: expected 0 <= correct <= n_test, n_test > 0, one "
                         f"per run; got correct={list(k)}, n_test={list(n)}")
    shrunk = (k + 1) / (n + 2)
    return 100 * k / n, 1e4 * shrunk * (1 - shrunk) / n


def accuracy_side(correct: Sequence[int], n_test: Sequence[int]) -> SideEstimate:
    """Test accuracy in points over a side's runs: the floor is the mean of the runs'
    binomial variances (`accuracy_runs`); the observed spread over seeds (training
    randomness) adds to it."""
    points, floors = accuracy_runs(correct, n_test)
    return SideEstimate(len(points), float(points.mean()), _spread(points),
                        float(floors.mean()))


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


# ---------------------------------------------------------------- the change


PAIRED, UNPAIRED = "paired", "unpaired"


@dataclasses.dataclass(frozen=True)
class Contrast:
    """The change candidate - base and the variance terms behind it.

    unpaired: terms = (base, candidate), estimate = difference of the means, variance
    the sum of the two means' variances. paired: terms = (the per-seed differences,),
    estimate = their mean. Either way the variance of the estimate is the sum of the
    terms' var_of_mean, and `satterthwaite_df` combines their degrees of freedom."""

    analysis: str
    terms: tuple[SideEstimate, ...]
    estimate: float

    @property
    def n(self) -> int:
        """Seeds per side (unpaired: the smaller side) or pairs (paired)."""
        return min(term.n for term in self.terms)

    @property
    def se(self) -> float:
        return math.sqrt(sum(term.var_of_mean for term in self.terms))

    @property
    def df(self) -> float:
        return satterthwaite_df(self.terms)

    def scaled(self, n: int) -> Contrast:
        """The same per-run variances with n seeds per side (or n pairs)."""
        return dataclasses.replace(self, terms=tuple(term.scaled(n) for term in self.terms))

    def text(self) -> str:
        if self.analysis == PAIRED:
            return f"paired by seed over {self.n} seeds"
        base, candidate = self.terms
        return f"unpaired, {base.n} base and {candidate.n} candidate seeds"


def unpaired(base: SideEstimate, candidate: SideEstimate) -> Contrast:
    """Two independent sets of runs: the difference of their means."""
    return Contrast(UNPAIRED, (base, candidate), candidate.mean - base.mean)


def paired_accuracy(base_correct: Sequence[int], base_n: Sequence[int],
                    candidate_correct: Sequence[int], candidate_n: Sequence[int]) -> Contrast:
    """Accuracy change from runs paired by seed (element i of each side is one seed).

    Why pair: with the same seed and configuration the two sides start from the same
    weights, see the data in the same order and are scored on the same test images, so
    whatever makes seed 0 a good or a bad run is shared and cancels in
    d_s = candidate_s - base_s. The seeds' own spread (80/70/62 is common) then no longer
    hides a change every seed shows.

    Model: d_s = delta + u_s + e_s, with u_s the part of the release's effect that
    differs between seeds (variance tau^2, unknown) and e_s the measurement noise of the
    two scores (variance phi_s). The binomial variances of the two runs (`accuracy_runs`,
    with the add-one correction) bound phi_s from above: f_s = var_base_s + var_cand_s
    is what two independent test sets would give, and scoring the same images makes the
    two scores positively correlated, so phi_s <= f_s.

    The variance of mean(d) is taken as (s_d^2 + f)/k for k pairs, s_d^2 the sample
    variance of the d_s (k - 1 degrees of freedom) and f the mean f_s: the floor adds to
    the observed spread, as on one side (`SideEstimate`). This is conservative twice over
    (f >= phi, and s_d^2 already estimates tau^2 + phi), and never lets three drops that
    happen to agree claim zero uncertainty. Taking max(s_d^2, f) instead would be smaller
    but would use the floor exactly when s_d^2 came out low by chance, where tau^2 may be
    large: a z test on it then alarms far more often than alpha at k = 3.

    The quantile: f is known (infinite degrees of freedom), s_d^2 is estimated with
    k - 1, so Welch-Satterthwaite gives df = (s_d^2 + f)^2 / (s_d^4 / (k - 1)): infinite
    when the drops agree (a z test on the floor), k - 1 when the spread dwarfs the floor
    (with s_d^2 taken at its upper bound in the df: `satterthwaite_df`). A t with
    k - 1 = 2 df on a floor-dominated SE would need t = 12.6 (alpha 0.05 over 8 tests)
    where the floor's known variance justifies z = 2.7.

    Assumptions: the seeds' runs are independent; d_s is roughly normal (a sum of many
    image outcomes and training noise); both runs of a seed saw the same test split."""
    if not len(base_correct) == len(candidate_correct) >= 1:
        raise ValueError(f"paired_accuracy: expected one base and one candidate run per "
                         f"seed; got {len(base_correct)} and {len(candidate_correct)}")
    b_points, b_floors = accuracy_runs(base_correct, base_n)
    c_points, c_floors = accuracy_runs(candidate_correct, candidate_n)
    d = c_points - b_points
    differences = SideEstimate(len(d), float(d.mean()), _spread(d),
                               float((b_floors + c_floors).mean()))
    return Contrast(PAIRED, (differences,), differences.mean)


@dataclasses.dataclass(frozen=True)
class Difference:
    """candidate - base (mean of differences when paired), its standard error,
    Welch-Satterthwaite degrees of freedom (inf when only floors carry variance) and the
    two-sided p of 'no change'."""

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


def satterthwaite_df(terms: Sequence[SideEstimate]) -> float:
    """Welch-Satterthwaite: the variance of the change is a sum of parts a_i with
    degrees of freedom nu_i; df = (sum a_i)^2 / sum(a_i^2 / nu_i). A spread part
    spread_var/m has m - 1 degrees of freedom; the floors are known (nu = inf, no part
    in the denominator). All spread zero: df = inf, a normal (z) test on the floors.

    One change to the textbook: the spread parts enter this formula at their upper
    SPREAD_BOUND confidence bound, s^2 (m - 1) / chi2_{m-1}(1 - SPREAD_BOUND), not as
    observed. Plugged in as observed, a spread that came out small by chance buys many
    degrees of freedom exactly when |t| is large: with a floor and 3 seeds, A/A
    simulation puts the rate of p < alpha/8 at about 4x nominal when the spread is as
    large as the floor. With the bound it is about 2x at worst, and the family-wise
    false alarms of tests/test_stats.py stay far below alpha. Without floors the bound
    cancels when the sides have equal seeds (Welch's df exactly). Only the df use the
    bound; the standard error keeps the observed spread."""
    from scipy.special import chdtri

    known = sum(term.floor_var / term.n for term in terms)
    parts = [(term.spread_var * (term.n - 1) / chdtri(term.n - 1, SPREAD_BOUND) / term.n,
              term.n - 1) for term in terms if term.n > 1 and term.spread_var > 0]
    if not parts:
        return math.inf
    total = known + sum(a for a, _ in parts)
    return total ** 2 / sum(a ** 2 / nu for a, nu in parts)


def difference(contrast: Contrast) -> Difference:
    """The t test of the contrast (Welch's for unpaired sides, a paired t for paired
    ones), with floors added to the variances. Valid at 3 seeds per side: its smallest
    p is not bounded away from 0 the way an exact permutation test's is (2/20 = 0.10 at
    3 against 3). Zero variance (only possible when the floors are 0): p is 1 for no
    change, 0 otherwise."""
    se, df = contrast.se, contrast.df
    if se == 0:
        return Difference(contrast.estimate, 0.0, df, 1.0 if contrast.estimate == 0 else 0.0)
    return Difference(contrast.estimate, se, df, t_two_sided_p(contrast.estimate / se, df))


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


def detectable_change(contrast: Contrast, *, threshold: float, alpha: float,
                      tests: int) -> float:
    """The smallest observed |change| the rule flags with these variances: beyond the
    threshold, and with p < alpha / K (Holm's first, strictest step)."""
    critical = t_quantile(1 - alpha / (2 * tests), contrast.df) * contrast.se
    return max(threshold, critical)


def _settled(contrast: Contrast, *, threshold: float, alpha: float, tests: int) -> bool:
    """Would this estimate be flagged or shown unchanged with these variances?"""
    if abs(contrast.estimate) > detectable_change(contrast, threshold=threshold,
                                                  alpha=alpha, tests=tests):
        return True
    half = t_quantile(1 - alpha, contrast.df) * contrast.se
    return abs(contrast.estimate) + half < threshold


def seeds_needed(contrast: Contrast, *, threshold: float, alpha: float, tests: int
                 ) -> int | None:
    """Seeds per side (pairs, when paired) with which the same estimate and per-run
    variances would give `regression`/`improvement` or `unchanged`; None beyond
    MAX_SEEDS_SEARCHED (an estimate right at the threshold needs ever more seeds) or
    with a one-seed side."""
    if contrast.n < MIN_SEEDS:
        return None
    for n in range(max(term.n for term in contrast.terms), MAX_SEEDS_SEARCHED + 1):
        if _settled(contrast.scaled(n), threshold=threshold, alpha=alpha, tests=tests):
            return n
    return None


def flagged(estimate: float, p_adjusted: float, *, threshold: float, alpha: float,
            worse_when: int) -> str | None:
    """'regression' or 'improvement' when the change is beyond the threshold and its
    adjusted p below alpha, else None: the part of the rule that can fail a CI job."""
    if p_adjusted < alpha and abs(estimate) > threshold:
        return "regression" if estimate * worse_when > 0 else "improvement"
    return None


def _one_seed(contrast: Contrast, p_adjusted: float, level: float) -> Judgement:
    """One seed on a side: the spread over seeds is unknown, so no interval."""
    side = "base" if contrast.terms[0].n < MIN_SEEDS else "candidate"
    return Judgement("inconclusive", p_adjusted, (math.nan, math.nan), level, math.nan, None,
                     (f"one {side} seed: the spread over seeds is unknown; run at least "
                      f"{MIN_SEEDS} seeds per side (3 or more recommended)",))


def judge(contrast: Contrast, diff: Difference, p_adjusted: float, *, threshold: float,
          alpha: float, tests: int, worse_when: int,
          describe: Callable[[float], str]) -> Judgement:
    """Apply the rule (module docstring) to one difference. worse_when is -1 when a
    negative change is worse (accuracy), +1 when a positive one is (step time).
    describe(x) formats a change in the metric's unit for the reasons, which name the
    analysis used (paired by seed over N seeds, or unpaired)."""
    level = 1 - 2 * alpha
    if contrast.n < MIN_SEEDS:
        return _one_seed(contrast, p_adjusted, level)
    low, high = diff.interval(level)
    detectable = detectable_change(contrast, threshold=threshold, alpha=alpha, tests=tests)
    stats_text = (f"{contrast.text()}: p={diff.p:.3g}, Holm p={p_adjusted:.3g} over {tests} "
                  f"tests; {level:.0%} interval {describe(low)} to {describe(high)}")
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
    needed = seeds_needed(contrast, threshold=threshold, alpha=alpha, tests=tests)
    why = ("change beyond the threshold but not significant" if abs(diff.estimate) > threshold
           else "interval reaches beyond the threshold")
    more = (f"about {needed} seeds per side would settle it" if needed
            else f"more than {MAX_SEEDS_SEARCHED} seeds per side would be needed")
    return Judgement("inconclusive", p_adjusted, (low, high), level, detectable, needed,
                     (f"{describe(diff.estimate)}: {why} ({stats_text}); {more}",))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width, n) of the two-sided t-interval for the mean of `values`.

    With seeds as independent draws, mean ± t(n-1) s/sqrt(n) covers the true mean in 95%
    of such experiments; with n = 3 the t quantile is 4.30, so three seeds give a wide
    interval, which is the honest answer. n < 2 has no interval (NaN half-width)."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(array)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(array.mean())
    if n < 2:
        return mean, math.nan, n
    half = t_quantile(0.5 + confidence / 2, n - 1) * float(array.std(ddof=1)) / math.sqrt(n)
    return mean, half, n


# ---------------------------------------------------------------- A/B bursts (`catsdogs ab`)


@dataclasses.dataclass(frozen=True)
class BurstRatio:
    """CANDIDATE/BASE step time from `pairs` pairs of neighbouring bursts: the
    geometric-mean ratio, its `level` interval, the spread (sd) of the pairs' log ratios,
    `detectable` (the slowdown, as a ratio, whose interval would just clear the
    threshold with this spread and number of pairs) and the verdict."""

    pairs: int
    ratio: float
    low: float
    high: float
    level: float
    spread: float
    detectable: float
    verdict: str


def burst_ratio(log_ratios: Sequence[float], *, max_slowdown: float, level: float = 0.95
                ) -> BurstRatio:
    """The ratio from d_i = log(candidate_i / base_i), one per pair of neighbouring bursts.

    exp(mean d) is the geometric-mean ratio; its interval is the t-interval of mean d
    (`t_interval`, n - 1 df) mapped back with exp. Assumptions: the pairs' d are
    independent and roughly normal around one true log ratio. Neighbouring bursts share
    the machine's load, which cancels in d; what is left (load changing within a pair,
    other processes' spikes) is noise in d, carried by its spread. The rule is the
    interval's alone, symmetric on the log scale (T = log(1 + max_slowdown/100)):
    regression when it lies above +T, improvement below -T, unchanged inside (-T, T),
    inconclusive otherwise (and with fewer than 2 pairs). A true ratio at the threshold
    is called either side at most (1 - level)/2 of the time per look."""
    values = np.asarray(log_ratios, dtype=float)
    mean, half, n = t_interval(values, level)
    threshold = math.log1p(max_slowdown / 100)
    low, high = mean - half, mean + half  # NaN with fewer than 2 pairs: inconclusive
    verdict = ("regression" if low > threshold else "improvement" if high < -threshold
               else "unchanged" if -threshold < low and high < threshold else "inconclusive")
    spread = float(values.std(ddof=1)) if n > 1 else math.nan
    return BurstRatio(n, math.exp(mean) if n else math.nan, math.exp(low), math.exp(high),
                      level, spread, math.exp(threshold + half), verdict)

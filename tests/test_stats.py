"""catsdogs.stats: the estimates, the test, the rule, and its false-alarm rate.

The A/A simulation draws SIMULATED runs (not measurements): per-run accuracies with a
seed spread plus binomial noise on 192 test images, and step times with run-to-run and
epoch-to-epoch noise; it checks how often the rule cries wolf when nothing changed."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2, ttest_ind, ttest_rel
from tabulate import tabulate

from catsdogs import design, stats
from catsdogs.training import ab

N_TEST = 192
ALPHA = 0.05


def _side(values, floor=0.0):
    values = np.asarray(values, float)
    return stats.SideEstimate(len(values), float(values.mean()), float(values.var(ddof=1)),
                              floor)


# ---------------------------------------------------------------- estimates


def test_a_perfect_score_on_16_images_still_has_uncertainty():
    side = stats.accuracy_side([16], [16])
    shrunk = 17 / 18  # (k + 1) / (n + 2)
    assert side.mean == 100.0
    assert side.floor_var == pytest.approx(1e4 * shrunk * (1 - shrunk) / 16)
    assert math.sqrt(side.floor_var) > 5


def test_accuracy_side_adds_the_spread_over_seeds_to_the_binomial_floor():
    side = stats.accuracy_side([130, 140, 150], [N_TEST] * 3)
    points = 100 * np.array([130, 140, 150]) / N_TEST
    assert side.mean == pytest.approx(points.mean())
    assert side.spread_var == pytest.approx(points.var(ddof=1))
    assert side.var_of_mean == pytest.approx((side.spread_var + side.floor_var) / 3)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="correct"):
        stats.accuracy_side([200], [N_TEST])


def test_step_side_works_on_logs_so_a_doubling_is_log_2():
    base = stats.step_side([[100.0, 101.0, 99.0], [102.0, 100.0, 98.0]])
    double = stats.step_side([[200.0, 202.0, 198.0], [204.0, 200.0, 196.0]])
    assert stats.difference(stats.unpaired(base, double)).estimate == pytest.approx(math.log(2))


# ---------------------------------------------------------------- the test


def test_without_floors_the_difference_is_welchs_t_test():
    rng = np.random.default_rng(4)
    a, b = rng.normal(70, 2, 5), rng.normal(66, 3, 5)  # equal n: the df bound cancels
    ours = stats.difference(stats.unpaired(_side(a), _side(b)))
    assert ours.p == pytest.approx(ttest_ind(b, a, equal_var=False).pvalue, rel=1e-9)


def test_zero_spread_on_both_sides_is_a_z_test_on_the_floors():
    base = stats.accuracy_side([138] * 3, [N_TEST] * 3)
    worse = stats.accuracy_side([119] * 3, [N_TEST] * 3)
    diff = stats.difference(stats.unpaired(base, worse))
    assert math.isinf(diff.df)
    assert diff.se == pytest.approx(math.sqrt(base.floor_var / 3 + worse.floor_var / 3))


def test_holm_adjustment_matches_the_textbook():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_a_10_point_drop_at_3_agreeing_seeds_is_flagged_among_8_tests():
    """The case an exact permutation test cannot see (its smallest p is 0.10)."""
    base = stats.accuracy_side([138] * 3, [N_TEST] * 3)
    worse = stats.accuracy_side([119] * 3, [N_TEST] * 3)
    contrast = stats.unpaired(base, worse)
    diff = stats.difference(contrast)
    p_adjusted = min(1.0, 8 * diff.p)  # Holm's first step with 8 tests
    judgement = stats.judge(contrast, diff, p_adjusted, threshold=1.0, alpha=ALPHA,
                            tests=8, worse_when=-1, describe=str)
    assert judgement.verdict == "regression"
    assert judgement.detectable < 10


def test_an_estimate_beyond_the_threshold_but_noisy_is_inconclusive_with_seed_advice():
    base = _side([70.0, 74.0, 66.0], floor=10.0)
    candidate = _side([66.0, 70.0, 62.0], floor=10.0)
    contrast = stats.unpaired(base, candidate)
    diff = stats.difference(contrast)
    judgement = stats.judge(contrast, diff, diff.p, threshold=1.0, alpha=ALPHA,
                            tests=1, worse_when=-1, describe=str)
    assert judgement.verdict == "inconclusive"
    assert judgement.seeds_needed and judgement.seeds_needed > 3
    bigger = contrast.scaled(judgement.seeds_needed)
    assert abs(diff.estimate) > stats.detectable_change(bigger, threshold=1.0, alpha=ALPHA,
                                                        tests=1)


def test_one_seed_per_side_is_inconclusive_and_says_why():
    base, candidate = stats.accuracy_side([138], [N_TEST]), stats.accuracy_side([100], [N_TEST])
    contrast = stats.unpaired(base, candidate)
    judgement = stats.judge(contrast, stats.difference(contrast), 1.0, threshold=1.0,
                            alpha=ALPHA, tests=1, worse_when=-1, describe=str)
    assert judgement.verdict == "inconclusive"
    assert "spread over seeds is unknown" in judgement.reasons[0]


def test_a_tight_interval_inside_the_threshold_is_unchanged():
    base = _side([100.0, 101.0, 99.0, 100.5, 99.5])
    candidate = _side([100.2, 100.8, 99.4, 100.1, 99.9])
    contrast = stats.unpaired(base, candidate)
    diff = stats.difference(contrast)
    judgement = stats.judge(contrast, diff, diff.p, threshold=5.0, alpha=ALPHA,
                            tests=1, worse_when=+1, describe=str)
    assert judgement.verdict == "unchanged"
    assert -5 < judgement.interval[0] < judgement.interval[1] < 5


# ---------------------------------------------------------------- pairing by seed


def test_pairing_cancels_the_seeds_own_spread():
    """Seeds at 80/70/62% each 10 points lower: the drops agree, so only the floors of
    the two runs of each seed are left; unpaired, the seeds' spread swamps the drop."""
    base = [154, 134, 119]
    candidate = [k - 19 for k in base]
    contrast = stats.paired_accuracy(base, [N_TEST] * 3, candidate, [N_TEST] * 3)
    (drops,) = contrast.terms
    assert (contrast.analysis, contrast.n, drops.spread_var) == ("paired", 3, 0.0)
    floors = [stats.accuracy_side([k], [N_TEST]).floor_var for k in base + candidate]
    assert drops.floor_var == pytest.approx((sum(floors[:3]) + sum(floors[3:])) / 3)
    diff = stats.difference(contrast)
    assert diff.estimate == pytest.approx(-100 * 19 / N_TEST) and math.isinf(diff.df)
    apart = stats.difference(stats.unpaired(stats.accuracy_side(base, [N_TEST] * 3),
                                            stats.accuracy_side(candidate, [N_TEST] * 3)))
    assert apart.estimate == pytest.approx(diff.estimate) and apart.se > 2 * diff.se


def test_paired_degrees_of_freedom_combine_a_known_floor_and_an_estimated_spread():
    base = [150, 140, 130]
    contrast = stats.paired_accuracy(base, [N_TEST] * 3, [134, 121, 107], [N_TEST] * 3)
    (drops,) = contrast.terms
    assert drops.spread_var > 0
    bound = drops.spread_var * 2 / chi2.ppf(1 - stats.SPREAD_BOUND, 2)  # its upper bound
    expected = (bound + drops.floor_var) ** 2 / (bound ** 2 / 2)
    assert contrast.df == pytest.approx(expected) and contrast.df > 2
    plain = (drops.spread_var + drops.floor_var) ** 2 / (drops.spread_var ** 2 / 2)
    assert contrast.df < plain  # a small spread buys fewer degrees of freedom


def test_without_floors_the_paired_contrast_is_the_paired_t_test():
    rng = np.random.default_rng(5)
    a = rng.normal(70, 5, 4)
    b = a + rng.normal(-3, 1, 4)
    drops = stats.SideEstimate(4, float((b - a).mean()), float((b - a).var(ddof=1)), 0.0)
    ours = stats.difference(stats.Contrast(stats.PAIRED, (drops,), drops.mean))
    assert ours.p == pytest.approx(ttest_rel(b, a).pvalue, rel=1e-9)


def test_one_pair_cannot_be_paired():
    with pytest.raises(ValueError, match="one base and one candidate run per seed"):
        stats.paired_accuracy([150, 140], [N_TEST] * 2, [150], [N_TEST])


# ---------------------------------------------------------------- A/A false alarms


ACCURACIES = (0.72, 0.76, 0.80, 0.96)  # roughly the four variants'


def _simulated_correct(rng: np.random.Generator, families: int, seeds: int, *,
                       seed_sd: float, release_sd: float, shared_images: float) -> np.ndarray:
    """SIMULATED correct counts, shape (families, 2 sides, 4 variants, seeds), both sides
    drawn from the same truth: a per-seed accuracy shared by both sides (sd seed_sd),
    plus independent noise of each side's run (sd release_sd), then 192 test images
    scored by each run. The images are the same on both sides: image i is right when
    sqrt(r) z_i + sqrt(1 - r) w_i < Phi^-1(p), z_i shared by the two runs of a seed,
    w_i each run's own (r = shared_images; 0 is independent binomial noise)."""
    from scipy.special import ndtri

    shape = (families, len(ACCURACIES), seeds)
    per_seed = np.array(ACCURACIES)[:, None] + seed_sd * rng.standard_normal(shape)
    truth = per_seed[:, None] + release_sd * rng.standard_normal((families, 2) + shape[1:])
    cut = ndtri(np.clip(truth, 0.01, 0.99)).astype(np.float32)
    shared = math.sqrt(shared_images) * rng.standard_normal(shape + (N_TEST,),
                                                            dtype=np.float32)
    own = math.sqrt(1 - shared_images)
    return np.stack([((shared + own * rng.standard_normal(shape + (N_TEST,),
                                                          dtype=np.float32))
                      < cut[:, side, ..., None]).sum(axis=-1) for side in (0, 1)], axis=1)


def _simulated_steps(rng: np.random.Generator, families: int, seeds: int) -> np.ndarray:
    """SIMULATED per-epoch step times (ms), shape (families, 2, 4, seeds, 4 epochs): 120 ms
    with 5% run-to-run and 10% epoch-to-epoch noise."""
    shape = (families, 2, len(ACCURACIES), seeds)
    runs = 120 * np.exp(0.05 * rng.standard_normal(shape))
    return runs[..., None] * np.exp(0.10 * rng.standard_normal(shape + (4,)))


def _false_alarms(correct: np.ndarray, steps: np.ndarray) -> tuple[int, float]:
    """(comparisons with any regression among their 8 Holm-corrected tests, share of the
    accuracy tests with raw p < alpha), each comparison judged as `compare` judges:
    accuracy paired by seed, step time unpaired."""
    families, _, variants, seeds = correct.shape
    n = [N_TEST] * seeds
    alarms, raw = 0, 0
    for f in range(families):
        tests = [(stats.paired_accuracy(correct[f, 0, v], n, correct[f, 1, v], n), 1.0, -1)
                 for v in range(variants)]
        tests += [(stats.unpaired(stats.step_side(steps[f, 0, v]),
                                  stats.step_side(steps[f, 1, v])), math.log1p(0.10), +1)
                  for v in range(variants)]
        diffs = [stats.difference(contrast) for contrast, _, _ in tests]
        raw += sum(d.p < ALPHA for d in diffs[:variants])
        alarms += any(
            stats.flagged(d.estimate, p, threshold=threshold, alpha=ALPHA,
                          worse_when=worse) == "regression"
            for d, p, (_, threshold, worse) in zip(diffs, stats.holm([d.p for d in diffs]),
                                                   tests))
    return alarms, raw / (families * variants)


@pytest.mark.parametrize("seeds,families,release_sd,shared_images", [
    (3, 1000, 0.01, 0.5),   # realistic: seeds differ (4 pts), runs repeat closely
    (3, 1000, 0.04, 0.0),   # a release that re-rolls the seed (diverged numerics): spread-led
    (5, 400, 0.02, 0.5)])
def test_a_a_pairs_raise_false_alarms_at_most_alpha_of_the_time(seeds, families, release_sd,
                                                                shared_images):
    """Simulated A/A comparisons of 4 variants x 2 metrics (8,000 tests at 3 seeds),
    accuracy paired by seed, Holm over the 8 of each: the share of comparisons with any
    regression must not exceed alpha, and no single accuracy test may reject 'no change'
    more often than alpha (both with the seeds' own spread at 4 points)."""
    rng = np.random.default_rng(2026 + seeds)
    correct = _simulated_correct(rng, families, seeds, seed_sd=0.04, release_sd=release_sd,
                                 shared_images=shared_images)
    alarms, raw_rate = _false_alarms(correct, _simulated_steps(rng, families, seeds))
    print(f"A/A at {seeds} seeds, release sd {release_sd}, shared images {shared_images}: "
          f"{alarms} false alarms in {families} comparisons; accuracy p < alpha in "
          f"{raw_rate:.2%} of tests")
    assert alarms / families <= ALPHA, f"{alarms} false alarms in {families} A/A comparisons"
    assert raw_rate <= ALPHA


# ---------------------------------------------------------------- the docs table


def test_docs_table_of_smallest_detectable_changes_is_the_codes_output():
    doc = (Path(__file__).parents[1] / "docs" / "verdicts.md").read_text()
    block = re.search(r"<!-- detectable:start -->\n(.*?)\n<!-- detectable:end -->", doc, re.S)
    assert block, "docs/verdicts.md lost its detectable-change table markers"
    assert block.group(1).strip() == detectable_markdown(design.smallest_detectable_table())


def test_the_docs_sentences_on_10_point_drops_at_3_seeds_hold():
    """docs/verdicts.md: paired, caught whatever the seeds' own spread while the drops'
    sd stays below about 2.4 points, not at 2.5; unpaired, below a seed sd of about 2,
    not at 2.2."""
    assert design.smallest_detectable(3, seed_spread=2.3, paired=True)[0] < 10
    assert design.smallest_detectable(3, seed_spread=2.5, paired=True)[0] > 10
    assert design.smallest_detectable(3, seed_spread=2.0)[0] < 10
    assert design.smallest_detectable(3, seed_spread=2.2)[0] > 10


def test_more_seeds_detect_smaller_changes():
    rows = design.smallest_detectable_table((3, 5, 10))
    for key in ("drop_pts_paired_spread_0", "drop_pts_paired_spread_2",
                "drop_pts_unpaired_spread_binomial"):
        drops = [row[key] for row in rows]
        assert drops == sorted(drops, reverse=True)
    assert rows[0]["drop_pts_paired_spread_2"] < 10


def detectable_markdown(rows: Sequence[dict[str, float]]) -> str:
    """design.smallest_detectable_table as the Markdown table in docs/verdicts.md."""
    paired_spread = f"{design.TABLE_DROP_SPREAD:g}"
    accuracy = {"drop_pts_paired_spread_0": "drop, paired, drops agree (pts)",
                f"drop_pts_paired_spread_{paired_spread}":
                    f"drop, paired, drop sd {paired_spread} pts (pts)",
                "drop_pts_unpaired_spread_0": "drop, unpaired, seeds agree (pts)",
                "drop_pts_unpaired_spread_binomial": "drop, unpaired, seed sd = binomial sd (pts)"}
    step_keys = [key for key in rows[0] if key.startswith("slowdown_pct_spread_")]
    headers = (["seeds per side"] + list(accuracy.values())
               + [f"slowdown, run-to-run sd {float(key.rsplit('_', 1)[1]):.0%}"
                  for key in step_keys])
    table = [[str(int(row["seeds"]))] + [f"{row[key]:.1f}" for key in accuracy]
             + [f"{row[key]:.0f}%" for key in step_keys] for row in rows]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)
# ---------------------------------------------------------------- A/B bursts (`catsdogs ab`)


def test_burst_ratio_is_the_geometric_mean_with_the_one_sample_t_interval():
    from scipy.stats import ttest_1samp

    d = np.log([1.02, 0.99, 1.05, 1.01, 0.98, 1.03, 1.00, 1.04])
    est = stats.burst_ratio(d, max_slowdown=5)
    ci = ttest_1samp(d, 0).confidence_interval(0.95)
    assert est.ratio == pytest.approx(math.exp(d.mean()))
    assert (est.low, est.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert est.pairs == 8 and est.spread == pytest.approx(d.std(ddof=1))
    # the slowdown whose interval would just clear x1.05 with this spread and these pairs
    assert est.detectable == pytest.approx(1.05 * est.ratio / est.low)


@pytest.mark.parametrize("centre,spread,verdict", [
    (1.10, 0.01, "regression"), (1 / 1.10, 0.01, "improvement"), (1.0, 0.01, "unchanged"),
    (1.03, 0.01, "unchanged"),  # a small change, shown smaller than the threshold
    (1.05, 0.01, "inconclusive"), (1.0, 0.10, "inconclusive")])
def test_the_burst_verdict_is_where_the_interval_lies(centre, spread, verdict):
    d = math.log(centre) + spread * np.array([-1.0, 1.0, -0.5, 0.5, 0.0, 0.2, -0.2, 0.0])
    assert stats.burst_ratio(d, max_slowdown=5).verdict == verdict


def test_one_pair_has_no_interval_and_no_verdict():
    est = stats.burst_ratio([math.log(1.5)], max_slowdown=5)
    assert est.verdict == "inconclusive" and math.isnan(est.low) and est.ratio == 1.5


def _simulated_pairs(rng: np.random.Generator, sims: int, pairs: int, ratio: float
                     ) -> np.ndarray:
    """SIMULATED log ratios of neighbouring bursts, shape (sims, pairs): burst values
    (log of a burst's median step) in blocks A B B A on a machine whose load drifts
    (AR(1) per burst, 0.98, stationary sd 10%), with 3% noise per burst and, in 5% of the
    bursts, another process taking 10 to 50% more; the candidate's are `ratio` slower."""
    from scipy.signal import lfilter

    bursts = 2 * pairs
    white = rng.standard_normal((sims, bursts + 200))
    load = lfilter([0.10 * math.sqrt(1 - 0.98 ** 2)], [1, -0.98], white, axis=1)[:, 200:]
    spikes = (rng.random((sims, bursts)) < 0.05) * rng.uniform(0.1, 0.5, (sims, bursts))
    side = np.resize(np.array(ab.ORDER), bursts)
    x = load + 0.03 * rng.standard_normal((sims, bursts)) + spikes + side * math.log(ratio)
    first, second = x[:, 0::2], x[:, 1::2]
    return np.where(side[0::2] == 0, second - first, first - second)


def _sequential_verdict(d: np.ndarray, max_slowdown: float = 5.0) -> str:
    """The verdict `catsdogs ab` reaches on these pairs: early looks (ab.looks, at
    ab.EARLY_LEVEL) until one is decisive, else the final LEVEL interval."""
    for n in ab.looks(len(d)):
        est = ab.decide(list(d[:n]), max_slowdown=max_slowdown, final=False)
        if est.verdict != "inconclusive":
            return est.verdict
    return ab.decide(list(d), max_slowdown=max_slowdown, final=True).verdict


@pytest.mark.parametrize("ratio,pairs,sims,wrong", [
    (1.0, 60, 1000, ("regression", "improvement")),   # A/A
    (1.05, 60, 1000, ("regression", "unchanged")),    # exactly at the threshold: both wrong
    (1.05, 200, 400, ("regression", "unchanged")),    # more looks
    (1 / 1.05, 60, 1000, ("improvement", "unchanged"))])
def test_sequential_a_b_calls_a_wrong_verdict_at_most_alpha_of_the_time(ratio, pairs, sims,
                                                                          wrong):
    """Each verdict, early looks included, is wrong at most alpha of the time on the
    simulated machine: A/A is never a regression or an improvement, and a change of
    exactly --max-slowdown is neither shown slower than it nor inside it."""
    rng = np.random.default_rng(1900 + pairs)
    verdicts = [_sequential_verdict(d) for d in _simulated_pairs(rng, sims, pairs, ratio)]
    rates = {verdict: verdicts.count(verdict) / sims for verdict in stats.VERDICTS}
    print(f"ratio {ratio:.4f}, {pairs} pairs at most: {rates}")
    for verdict in wrong:
        assert rates[verdict] <= ALPHA, (verdict, rates)


def test_sequential_a_b_finds_a_10_percent_slowdown_within_60_pairs():
    """The power the issue asks for, on the same simulated machine: x1.10 is a regression
    in at least 85% of the sessions of 60 pairs (about 5 minutes of 2-second bursts)."""
    rng = np.random.default_rng(7)
    verdicts = [_sequential_verdict(d) for d in _simulated_pairs(rng, 500, 60, 1.10)]
    assert verdicts.count("regression") / 500 >= 0.85, verdicts.count("regression")
    assert "unchanged" not in verdicts and "improvement" not in verdicts

"""Experiment statistics against SciPy and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from services.content.stats import (
    DecisionRule,
    Variant,
    chi2_sf,
    evaluate,
    holm,
    posterior,
    required_sample,
    srm_test,
    two_proportion_z,
    wilson_interval,
)


def test_two_proportion_z_matches_scipy_chi2_contingency() -> None:
    for x1, n1, x2, n2 in [(1013, 48210, 864, 47985), (30, 1000, 45, 1000), (5, 200, 5, 210)]:
        z, p = two_proportion_z(x1, n1, x2, n2)
        table = [[x1, n1 - x1], [x2, n2 - x2]]
        chi2, p_ref, _, _ = stats.chi2_contingency(table, correction=False)
        assert z * z == pytest.approx(chi2, rel=1e-9)
        assert p == pytest.approx(p_ref, rel=1e-9)
    assert two_proportion_z(0, 0, 1, 10) == (0.0, 1.0)


def test_wilson_interval_matches_scipy() -> None:
    lo, hi = wilson_interval(1013, 48210)
    ref = stats.binomtest(1013, 48210).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_chi_square_and_srm_match_scipy() -> None:
    for stat, dof in [(0.5, 1), (3.84, 1), (40.0, 19), (250.0, 3), (1e-6, 2)]:
        assert chi2_sf(stat, dof) == pytest.approx(stats.chi2.sf(stat, dof), rel=1e-9, abs=1e-300)
    observed = [50_500, 49_500, 50_000]
    stat, p = srm_test(observed, [1, 1, 1])
    ref = stats.chisquare(observed)
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_posterior_matches_monte_carlo() -> None:
    x, n = [1013, 864, 990], [48210, 47985, 48100]
    probs, losses = posterior(x, n)
    rng = np.random.default_rng(7)
    draws = np.array([rng.beta(1 + xi, 1 + ni - xi, 400_000) for xi, ni in zip(x, n, strict=True)])
    best = np.bincount(draws.argmax(axis=0), minlength=3) / draws.shape[1]
    assert probs == pytest.approx(list(best), abs=0.005)
    mc_loss = [(draws.max(axis=0) - draws[i]).mean() for i in range(3)]
    assert losses == pytest.approx(mc_loss, rel=0.02, abs=1e-6)
    assert sum(probs) == pytest.approx(1.0)


def test_required_sample_grows_with_more_comparisons() -> None:
    one = required_sample(0.02, 0.10)
    assert 75_000 < one < 85_000  # the textbook figure for 2% +10% relative, 80% power
    assert required_sample(0.02, 0.10, comparisons=4) > one


def test_a_clear_winner_is_declared() -> None:
    e = evaluate(
        [Variant("a", 48210, 1013), Variant("b", 47985, 864)], DecisionRule(min_sample=10_000)
    )
    assert e.decision == "winner" and e.winner == "a" and e.reasons == []
    assert e.p_value is not None and e.p_value < 0.001
    assert e.variants[0]["probability_best"] > 0.99


def test_no_winner_below_the_minimum_sample() -> None:
    e = evaluate([Variant("a", 4821, 101), Variant("b", 4798, 86)], DecisionRule(min_sample=10_000))
    assert e.decision is None and not e.min_sample_reached


def test_sample_ratio_mismatch_blocks_a_decision() -> None:
    e = evaluate(
        [Variant("a", 60_000, 1500), Variant("b", 40_000, 800)], DecisionRule(min_sample=10_000)
    )
    assert e.srm["flagged"] and e.decision is None
    assert any("sample ratio" in r for r in e.reasons)
    # The same counts are fine when the split was planned 60/40.
    planned = evaluate(
        [Variant("a", 60_000, 1500, weight=0.6), Variant("b", 40_000, 800, weight=0.4)],
        DecisionRule(min_sample=10_000),
    )
    assert not planned.srm["flagged"] and planned.decision == "winner"


def test_many_variants_are_corrected_and_no_difference_at_the_last_look() -> None:
    same = [Variant(str(i), 20_000, 400 + (i % 3)) for i in range(20)]
    e = evaluate(same, DecisionRule(min_sample=5_000, looks=4))
    assert e.decision == "no_difference" and e.winner is None
    assert e.p_value == pytest.approx(1.0)
    with pytest.raises(ValueError):
        evaluate([Variant("a", 10, 1)], DecisionRule())


def test_looks_split_alpha() -> None:
    # p about 0.02: significant at 0.05 with one look, not at 0.05 / 4 per look.
    variants = [Variant("a", 20_000, 460), Variant("b", 20_000, 392)]
    one = evaluate(
        variants,
        DecisionRule(min_sample=20_000, looks=1, probability_threshold=0.9, loss_threshold=0.05),
    )
    four = evaluate(
        variants,
        DecisionRule(min_sample=5_000, looks=4, probability_threshold=0.9, loss_threshold=0.05),
    )
    assert one.p_value == four.p_value and 0.0125 < (one.p_value or 0) < 0.05
    assert one.decision == "winner" and four.decision == "no_difference"
    assert four.look == 4 and one.look == 1
    assert evaluate(variants, DecisionRule(min_sample=8_000, looks=4)).look == 2

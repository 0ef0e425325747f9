"""Paired bootstrap intervals on cases worked out by hand."""

import pytest

from selfplay.evaluation.bootstrap import (_quantile, paired_bootstrap, paired_pass_at_k,
                                per_problem_pass_at_k)


def test_identical_measurements_give_a_degenerate_interval_at_zero():
    scores = [0.0, 0.25, 1.0, 0.5, 0.0]
    interval = paired_bootstrap(scores, list(scores))
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.above_zero and not interval.below_zero
    assert interval.problems == 5 and interval.level == 0.9


def test_a_constant_shift_gives_an_interval_at_the_shift():
    before = [0.0, 0.25, 0.5, 0.1]
    interval = paired_bootstrap(before, [b + 0.25 for b in before])
    assert interval.estimate == pytest.approx(0.25)
    assert interval.low == pytest.approx(0.25) and interval.high == pytest.approx(0.25)
    assert interval.above_zero
    down = paired_bootstrap(before, [b - 0.1 for b in before])
    assert down.high == pytest.approx(-0.1) and down.below_zero


def test_one_problem_of_two_improving_spans_the_possible_means():
    # Differences (0, 1): a resample of two problems has mean 0, 0.5 or 1 with probabilities
    # 1/4, 1/2, 1/4, so the 90% interval runs from 0 to 1 and the estimate is 0.5.
    interval = paired_bootstrap([0.0, 0.0], [0.0, 1.0], resamples=4000, seed=1)
    assert interval.estimate == 0.5
    assert (interval.low, interval.high) == (0.0, 1.0)


def test_pairing_removes_the_spread_that_problems_share():
    # Scores spread from 0 to 1 over problems, each raised by 0.1 or 0.2: paired, the interval
    # stays within [0.1, 0.2] although the scores themselves vary ten times as much.
    before = [i / 20 for i in range(20)]
    after = [b + (0.1 if i % 2 else 0.2) for i, b in enumerate(before)]
    interval = paired_bootstrap(before, after, seed="x")
    assert 0.1 <= interval.low < interval.estimate < interval.high <= 0.2
    assert interval.estimate == pytest.approx(0.15)


def test_same_seed_same_interval_and_labels_seed_streams():
    before, after = [0.0, 0.3, 0.1, 0.9, 0.4], [0.2, 0.1, 0.5, 0.8, 0.4]
    assert paired_bootstrap(before, after, seed="a") == paired_bootstrap(before, after, seed="a")
    assert paired_bootstrap(before, after, seed=3) == paired_bootstrap(before, after, seed=3)


def test_unpaired_or_empty_input_is_refused():
    with pytest.raises(ValueError, match="same problems"):
        paired_bootstrap([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="no problems"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([0.1], [0.2], level=1.0)


def test_quantile_interpolates_like_numpy():
    values = [0.0, 1.0, 2.0, 10.0]
    assert _quantile(values, 0.0) == 0.0 and _quantile(values, 1.0) == 10.0
    assert _quantile(values, 0.5) == 1.5
    assert _quantile(values, 0.9) == pytest.approx(7.6)  # 2 + 0.7 * 8


def test_pass_at_k_per_problem_and_paired_over_shared_problems():
    before = {"a": (10, 0), "b": (10, 10), "c": (10, 5)}
    # pass@1 = c / n per problem.
    assert per_problem_pass_at_k(before, 1) == {"a": 0.0, "b": 1.0, "c": 0.5}
    # pass@10 with n = 10: 1 if any passed.
    assert per_problem_pass_at_k(before, 10) == {"a": 0.0, "b": 1.0, "c": 1.0}
    # Only the problems both sides measured are compared ("d" is not in before).
    after = {"a": (10, 2), "b": (10, 10), "c": (10, 5), "d": (10, 10)}
    interval = paired_pass_at_k(before, after, 1)
    assert interval.problems == 3
    assert interval.estimate == pytest.approx(0.2 / 3)
    assert interval.low >= 0 and interval.high <= 0.2

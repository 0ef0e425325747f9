import pytest

from selfplay.evaluation.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n, c, k, expected", [
    (10, 0, 1, 0.0),
    (10, 10, 5, 1.0),
    (10, 3, 1, 0.3),                  # pass@1 is the plain success rate
    (4, 1, 2, 1 - 3 / 6),             # 1 - C(3,2)/C(4,2)
    (5, 2, 3, 1 - 1 / 10),            # 1 - C(3,3)/C(5,3)
    (5, 3, 3, 1.0),                   # only 2 failures: every 3-draw holds a pass
    (10, 2, 5, 1 - 56 / 252),         # 1 - C(8,5)/C(10,5)
    (100, 1, 10, 0.1),                # 1 - C(99,10)/C(100,10) = 10/100
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_is_exact_for_large_n():
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)
    assert pass_at_k(2000, 1000, 100) == pytest.approx(1.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)


def test_mean_over_problems_skips_k_above_n():
    result = mean_pass_at_k([(4, 1), (4, 0)], [1, 2, 10])
    assert result == {"1": pytest.approx((0.25 + 0) / 2), "2": pytest.approx((0.5 + 0) / 2)}

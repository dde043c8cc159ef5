"""Bootstrap intervals, paired tests and Holm correction on hand-made data."""

import numpy as np
import pytest

from explain.layers import ExplainError
from explain.uncertainty import bootstrap_interval, compare_recipes, holm, paired_difference


def test_constant_values_give_a_zero_width_interval():
    interval = bootstrap_interval(np.full((3, 20), 0.7))
    assert (interval.mean, interval.low, interval.high) == pytest.approx((0.7, 0.7, 0.7))


def test_interval_covers_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    small = bootstrap_interval(rng.normal(0.5, 0.1, (3, 20)))
    large = bootstrap_interval(rng.normal(0.5, 0.1, (3, 2000)), n_boot=500)
    assert small.low < 0.5 < small.high and large.low < 0.5 < large.high
    assert large.high - large.low < (small.high - small.low) / 4


def test_interval_of_a_normal_mean_matches_the_textbook_width():
    """One seed, n images of sd 1: the 95 % interval is about mean +- 1.96 / sqrt(n)."""
    values = np.random.default_rng(1).normal(0.0, 1.0, 400)
    interval = bootstrap_interval(values, n_boot=4000)
    assert interval.high - interval.low == pytest.approx(2 * 1.96 / 20, rel=0.15)


def test_seed_to_seed_variation_widens_the_interval():
    rng = np.random.default_rng(2)
    images = rng.normal(0.5, 0.05, 100)
    same = np.stack([images] * 3)
    shifted = np.stack([images - 0.1, images, images + 0.1])
    assert (bootstrap_interval(shifted).high - bootstrap_interval(shifted).low) > 3 * (
        bootstrap_interval(same).high - bootstrap_interval(same).low
    )


def test_nan_values_are_left_out_not_counted_as_zero():
    values = np.array([[1.0, np.nan, 1.0], [1.0, 1.0, np.nan]])
    assert bootstrap_interval(values).mean == pytest.approx(1.0)


def test_a_real_shift_on_the_same_images_is_significant_and_no_shift_is_not():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, (3, 60))
    noise = rng.normal(0, 0.02, (3, 60))
    shifted = paired_difference(base + 0.05 + noise, base, "flip", "basic")
    same = paired_difference(base + noise, base, "noise", "basic")
    assert shifted.p_value < 1e-6 and shifted.interval.low > 0.03
    assert same.p_value > 0.05 and same.interval.low < 0 < same.interval.high


def test_pairing_finds_a_shift_that_image_to_image_spread_would_hide():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.0, 1.0, (1, 40))  # spread 0.29, shift 0.02
    diff = paired_difference(base + 0.02 + rng.normal(0, 0.005, (1, 40)), base)
    assert diff.p_value < 0.001


def test_holm_on_hand_computed_p_values():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01 = 0.03, 2*0.02 = 0.04, 1*0.04 = 0.04 (monotone)
    result = holm([0.04, 0.01, 0.02])
    assert [p for p, _ in result] == pytest.approx([0.04, 0.03, 0.04])
    assert [r for _, r in result] == [True, True, True]
    assert holm([0.03, 0.02]) == [(0.04, True), (0.04, True)]
    assert holm([0.03, 0.04]) == [(0.06, False), (0.06, False)]


def test_compare_recipes_says_in_words_which_recipe_is_better():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.3, 0.7, (3, 50))
    tables = {"basic": base, "flip": base + 0.1 + rng.normal(0, 0.01, base.shape), "noise": base}
    results = {(d.a, d.b): d for d in compare_recipes(tables, n_boot=300)}
    assert results[("basic", "flip")].significant
    assert not results[("basic", "noise")].significant
    assert results[("basic", "flip")].sentence("pointing").startswith("flip is better")
    assert "no significant difference" in results[("basic", "noise")].sentence("pointing")


def test_different_image_sets_cannot_be_paired():
    with pytest.raises(ExplainError, match="same images"):
        paired_difference(np.ones((3, 10)), np.ones((3, 12)))


@pytest.mark.parametrize("bad", [np.array([]), np.full((2, 3), np.nan), np.ones((2, 2, 2))])
def test_unusable_tables_are_refused(bad):
    with pytest.raises(ExplainError):
        bootstrap_interval(bad)

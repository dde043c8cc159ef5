"""Scoring math on hand-made arrays: maps, top-k scores, thresholds, the decision rule."""

import numpy as np
import pytest

from anomaly.postprocess import (
    ScoringError,
    f1_optimal_threshold,
    is_anomalous,
    part_region,
    percentile_threshold,
    top_k_mean,
)
from anomaly.scoring import ErrorStats, ScoreConfig, anomaly_maps, error_maps, ssim_map


def test_top_k_mean_averages_only_the_highest_pixels():
    maps = np.zeros((1, 10, 10), np.float32)
    maps[0, 0, :5] = [5, 4, 3, 2, 1]  # 5 % of 100 pixels
    assert top_k_mean(maps, 5.0)[0] == pytest.approx(3.0)
    assert top_k_mean(maps, 2.0)[0] == pytest.approx(4.5)
    assert top_k_mean(maps, 100.0)[0] == pytest.approx(0.15)


def test_top_k_mean_uses_at_least_one_pixel():
    maps = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert top_k_mean(maps, 0.01)[0] == 15.0


def test_percentile_threshold_flags_the_expected_share_of_good_parts():
    good = np.arange(1, 101, dtype=float)
    threshold = percentile_threshold(good, 99)
    assert threshold == pytest.approx(99.01)
    assert is_anomalous(good, threshold).sum() == 1


def test_percentile_threshold_needs_scores():
    with pytest.raises(ScoringError, match="held-out good"):
        percentile_threshold([], 99)


def test_f1_threshold_separates_perfectly_separable_scores():
    scores = [0.1, 0.2, 0.3, 0.8, 0.9]
    labels = [False, False, False, True, True]
    threshold, f1 = f1_optimal_threshold(scores, labels)
    assert f1 == 1.0
    assert 0.3 < threshold < 0.8
    assert is_anomalous(scores, threshold).tolist() == labels


def test_f1_threshold_finds_the_best_trade_off_on_overlapping_scores():
    scores = [0.1, 0.5, 0.6, 0.7, 0.9]
    labels = [False, True, False, True, True]
    threshold, f1 = f1_optimal_threshold(scores, labels)
    # flagging >= 0.5 gives tp=3, fp=1, fn=0 -> F1 6/7; flagging >= 0.7 gives 4/5
    assert f1 == pytest.approx(6 / 7)
    assert 0.1 < threshold < 0.5


def test_f1_threshold_needs_both_classes():
    with pytest.raises(ScoringError, match="both good and defective"):
        f1_optimal_threshold([0.1, 0.2], [False, False])


def test_score_equal_to_threshold_is_anomalous_as_in_every_model():
    # one rule for classifier, autoencoder and melting tank: store.thresholds.decide (>=)
    assert is_anomalous([0.49999, 0.5, 0.50001], 0.5).tolist() == [False, True, True]


def test_ssim_map_is_one_for_identical_images_and_lower_where_they_differ():
    rng = np.random.default_rng(0)
    a = rng.random((32, 32)).astype(np.float32)
    b = a.copy()
    b[10:20, 10:20] = 0.0
    same, diff = ssim_map(a, a), ssim_map(a, b)
    assert np.allclose(same, 1.0, atol=1e-4)
    assert diff[15, 15] < 0.5 and diff[0, 0] > 0.99


def test_error_map_is_the_squared_difference_for_mse():
    x = np.full((1, 8, 8, 1), 0.5, np.float32)
    r = x.copy()
    r[0, 2, 3, 0] = 0.1
    maps = error_maps(x, r, "mse")
    assert maps.shape == (1, 8, 8)
    assert maps[0, 2, 3] == pytest.approx(0.16)
    assert maps.sum() == pytest.approx(0.16)


def test_per_pixel_statistics_silence_places_that_are_always_hard():
    good = np.zeros((6, 8, 8), np.float32)
    good[:, 0, :] = [[1.0], [1.2], [0.8], [1.1], [0.9], [1.0]]  # a hard edge in every part
    stats = ErrorStats.fit(good + np.random.default_rng(0).normal(0, 0.01, good.shape))
    test = np.zeros((1, 8, 8), np.float32)
    test[0, 0, :] = 1.0  # usual edge error
    test[0, 5, 5] = 1.0  # same error where good parts never have any
    z = stats.normalize(test)
    assert z[0, 5, 5] > 10 * z[0, 0, 0]


def test_error_stats_round_trip_through_npy_without_pickle(tmp_path):
    stats = ErrorStats.fit(np.random.default_rng(1).random((4, 6, 6)).astype(np.float32))
    stats.save(tmp_path / "stats.npy")
    loaded = ErrorStats.load(tmp_path / "stats.npy")
    assert np.array_equal(loaded.mean, stats.mean) and np.array_equal(loaded.std, stats.std)


def test_part_mask_covers_the_part_and_not_the_background():
    img = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 32) ** 2 + (xx - 32) ** 2 < 20**2] = 0.8
    img[30:34, 50:53] = 0.0  # a bite out of the rim stays inside the hull
    mask = part_region(img)
    assert mask[32, 32] and mask[32, 51]
    assert not mask[2, 2] and not mask[60, 5]


def test_part_mask_falls_back_to_everything_on_a_texture():
    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    assert part_region(img).all()


def test_background_errors_do_not_reach_the_map_with_the_part_mask():
    x = np.zeros((1, 64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    x[0][(yy - 32) ** 2 + (xx - 32) ** 2 < 20**2] = 0.8
    recon = x.copy()
    recon[0, 2:6, 2:6] = 0.9  # reconstruction error in the background only
    config = ScoreConfig(map="mse", sigma=1.0, normalize=False, part_mask=True)
    assert anomaly_maps(x, recon, config).max() == 0.0
    config.part_mask = False
    assert anomaly_maps(x, recon, config).max() > 0.0


def test_score_config_round_trips_and_names_the_score():
    config = ScoreConfig(map="ssim", top_k=0.5)
    data = config.to_dict()
    assert data["name"] == "top_k_mean" and data["top_k"] == 0.5
    assert ScoreConfig.from_dict(data) == config


def test_score_config_refuses_an_unknown_map():
    with pytest.raises(ScoringError, match="unknown map kind"):
        ScoreConfig(map="l1")

"""Localization: pixel threshold from good parts, masks to boxes, AUPRO by hand."""

import numpy as np
import pytest

from anomaly.localize import (
    AuproAccumulator,
    LocalizationError,
    aupro,
    calibrate_pixel_threshold,
    mask_to_boxes,
    predicted_mask,
)


def test_pixel_threshold_is_the_percentile_of_good_pixels_inside_the_part():
    good = np.zeros((2, 10, 10), np.float32)
    good[0] = np.arange(100).reshape(10, 10) / 100  # 0.00 .. 0.99
    good[1] = 5.0  # outside the part below, so it must not count
    regions = np.zeros_like(good, bool)
    regions[0] = True
    assert calibrate_pixel_threshold(good, 90.0, regions) == pytest.approx(0.891)
    # without regions every pixel counts: the median lies between 0.99 and 5.0
    assert calibrate_pixel_threshold(good, 50.0) == pytest.approx(2.995)
    # at most (100 - q) % of a good part's pixels reach the threshold
    t = calibrate_pixel_threshold(good[:1], 95.0)
    assert predicted_mask(good[0], t).mean() <= 0.05 + 1e-9
    with pytest.raises(LocalizationError, match="percentile"):
        calibrate_pixel_threshold(good, 100.0)
    with pytest.raises(LocalizationError, match="empty"):
        calibrate_pixel_threshold(good, 99.0, np.zeros_like(regions))


def test_mask_to_boxes_one_box_per_region_hottest_first():
    amap = np.zeros((20, 30), np.float32)
    amap[2:5, 3:9] = 1.0  # 3 x 6 region, peak 1
    amap[10:18, 20:22] = 2.0  # 8 x 2 region, peak 2
    amap[0, 29] = 3.0  # a single hot pixel
    boxes = mask_to_boxes(predicted_mask(amap, 0.5), amap, min_area=2)
    assert [(b.x_min, b.y_min, b.x_max, b.y_max) for b in boxes] == [(20, 10, 22, 18), (3, 2, 9, 5)]
    assert [b.area for b in boxes] == [16, 18]
    assert [b.score for b in boxes] == [2.0, 1.0]
    assert len(mask_to_boxes(predicted_mask(amap, 0.5), amap)) == 3
    assert mask_to_boxes(np.zeros((4, 4), bool)) == []
    with pytest.raises(LocalizationError, match="differ"):
        mask_to_boxes(np.zeros((4, 4), bool), np.zeros((4, 5)))


def test_aupro_against_a_hand_computed_case():
    # one image, 1 x 10: region A = pixels 0-1, region B = pixels 2-5, 4 good pixels 6-9
    amap = np.array([[0.9, 0.5, 0.8, 0.7, 0.2, 0.2, 0.6, 0.1, 0.1, 0.1]])
    truth = np.array([[1, 1, 1, 1, 1, 1, 0, 0, 0, 0]], bool)
    # threshold -> (FPR, PRO = mean of per-region overlap):
    #   0.9: (0, (1/2 + 0)/2 = 0.25)   0.8: (0, (1/2 + 1/4)/2 = 0.375)
    #   0.7: (0, (1/2 + 2/4)/2 = 0.5)  0.6: (1/4, 0.5)   0.5: (1/4, (1 + 2/4)/2 = 0.75)
    #   0.2: (1/4, 1.0)                0.1: (1, 1.0)
    # up to FPR 0.3: 0.5 * 0.25 (0 -> 0.25) + 1.0 * 0.05 (0.25 -> 0.3) = 0.175; / 0.3
    assert aupro(amap[None], truth[None], 0.3) == pytest.approx(0.175 / 0.3)
    # up to FPR 1: 0.125 + 1.0 * 0.75 = 0.875
    assert aupro(amap[None], truth[None], 1.0) == pytest.approx(0.875)
    # binned over [0, 1]: thresholds land on the same values, so the same area
    acc = AuproAccumulator(top=1.0, bins=10)
    acc.add(amap + 1e-6, truth)
    assert acc.result(0.3) == pytest.approx(0.175 / 0.3, abs=1e-6)


def test_aupro_weighs_regions_not_pixels():
    # a perfect map for the big region and nothing for the small one: pixel-wise most defect
    # pixels are found, but only half of the regions
    amap = np.zeros((1, 10, 10))
    truth = np.zeros((1, 10, 10), bool)
    truth[0, :5, :5] = True
    amap[0, :5, :5] = 1.0
    truth[0, 8, 8] = True  # the small region scores 0, like the good pixels
    # PRO is 0.5 at FPR 0 and 1 only at FPR 1 (threshold 0): 0.5 -> 0.65 linearly up to 0.3
    assert aupro(amap, truth, 0.3) == pytest.approx(0.575)
    with pytest.raises(LocalizationError, match="defect region"):
        aupro(amap, np.zeros_like(truth), 0.3)

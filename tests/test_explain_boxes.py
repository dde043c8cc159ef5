"""cam_to_boxes: known blobs give exact boxes, scores, thresholds and merging."""

import numpy as np
import pytest

from explain import ExplainError, cam_to_boxes
from explain.boxes import merge_boxes, threshold_value


def two_blobs() -> np.ndarray:
    cam = np.zeros((40, 50), np.float32)
    cam[5:10, 8:20] = 1.0  # x 8..19, y 5..9
    cam[25:35, 30:33] = 0.6  # x 30..32, y 25..34
    cam[26, 31] = 0.8
    return cam


def test_known_blobs_give_exact_boxes_with_exclusive_max_corner():
    boxes = cam_to_boxes(two_blobs(), threshold=0.5, min_area=1)
    assert [b.as_tuple() for b in boxes] == [(8, 5, 20, 10), (30, 25, 33, 35)]


def test_box_scores_are_peak_and_mean_heat_inside_best_first():
    first, second = cam_to_boxes(two_blobs(), threshold=0.5, min_area=1)
    assert (first.score, first.mean, first.area) == (1.0, 1.0, 60)
    assert second.score == pytest.approx(0.8)
    assert second.mean == pytest.approx((29 * 0.6 + 0.8) / 30)


def test_fraction_threshold_is_relative_to_the_peak():
    boxes = cam_to_boxes(two_blobs() * 0.5, threshold=0.85, min_area=1)
    assert [b.as_tuple() for b in boxes] == [(8, 5, 20, 10)]


def test_otsu_separates_blobs_from_background():
    rng = np.random.default_rng(0)
    cam = two_blobs() + rng.uniform(0, 0.05, (40, 50)).astype(np.float32)
    assert [b.as_tuple() for b in cam_to_boxes(cam, min_area=1)] == [
        (8, 5, 20, 10),
        (30, 25, 33, 35),
    ]


def test_small_regions_are_dropped():
    boxes = cam_to_boxes(two_blobs(), threshold=0.5, min_area=31)
    assert [b.as_tuple() for b in boxes] == [(8, 5, 20, 10)]


def test_nearby_boxes_merge_within_the_gap():
    cam = np.zeros((20, 30), np.float32)
    cam[2:6, 2:6] = 1.0
    cam[2:6, 9:12] = 0.9  # 3 px gap to the first blob
    assert len(cam_to_boxes(cam, threshold=0.5, min_area=1, merge=2)) == 2
    merged = cam_to_boxes(cam, threshold=0.5, min_area=1, merge=4)
    assert [b.as_tuple() for b in merged] == [(2, 2, 12, 6)]
    assert merged[0].area == 16 + 12 and merged[0].score == 1.0


def test_overlapping_boxes_merge_with_zero_gap():
    boxes = cam_to_boxes(two_blobs(), threshold=0.5, min_area=1)
    inner = boxes[0].__class__(10, 6, 14, 9, 0.3, 0.3, 4)
    assert len(merge_boxes([boxes[0], inner], gap=0)) == 1


def test_all_zero_map_has_no_boxes():
    assert cam_to_boxes(np.zeros((8, 8), np.float32)) == []
    assert threshold_value(np.zeros((8, 8), np.float32)) == np.inf


@pytest.mark.parametrize("bad", [0.0, 1.5, "mean"])
def test_bad_threshold_is_refused(bad):
    with pytest.raises(ExplainError, match="threshold"):
        cam_to_boxes(two_blobs(), threshold=bad)


def test_non_2d_map_is_refused():
    with pytest.raises(ExplainError, match="2-D"):
        cam_to_boxes(np.zeros((1, 8, 8), np.float32))

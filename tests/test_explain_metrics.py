"""explain.metrics: one hand-computed case per measure."""

import numpy as np
import pytest

from explain import ExplainError
from explain import metrics as m


def test_tolerance_is_15_px_at_224_and_scales_with_size():
    assert m.tolerance_px((224, 224)) == 15
    assert m.tolerance_px((448, 300)) == 30
    assert m.tolerance_px((112, 112)) == 8  # 7.5 rounds to even


def test_dilate_grows_a_pixel_into_a_disc():
    mask = np.zeros((7, 7), bool)
    mask[3, 3] = True
    grown = m.dilate(mask, 1)
    assert grown.sum() == 5  # the 3x3 ellipse is a plus sign
    assert grown[2, 3] and grown[3, 4] and not grown[2, 2]


def test_energy_inside_is_the_heat_share_in_the_mask():
    cam = np.array([[1.0, 3.0], [0.0, 4.0]], np.float32)
    mask = np.array([[False, True], [False, True]])
    assert m.energy_inside(cam, mask) == pytest.approx(7 / 8)
    assert m.energy_inside(np.zeros((2, 2)), mask) == 0.0


def test_pointing_game_hits_when_the_peak_is_in_the_mask():
    cam = np.zeros((5, 5), np.float32)
    cam[1, 3] = 1.0
    mask = np.zeros((5, 5), bool)
    mask[1, 3] = True
    assert m.pointing_game(cam, mask)
    assert not m.pointing_game(cam, ~mask)
    assert not m.pointing_game(np.zeros((5, 5)), mask)


def test_component_boxes_and_iou():
    mask = np.zeros((10, 10), bool)
    mask[1:3, 1:4] = True
    mask[6:9, 6:8] = True
    assert m.component_boxes(mask) == [(1, 1, 4, 3), (6, 6, 8, 9)]
    # 2x2 overlap of two 4x4 boxes: 4 / (16 + 16 - 4)
    assert m.box_iou((0, 0, 4, 4), (2, 2, 6, 6)) == pytest.approx(4 / 28)
    assert m.box_iou((0, 0, 2, 2), (5, 5, 6, 6)) == 0.0
    assert m.best_box_iou([(0, 0, 4, 4), (6, 6, 8, 9)], m.component_boxes(mask)) == 1.0
    assert m.best_box_iou([], [(0, 0, 1, 1)]) == 0.0


def test_part_mask_finds_the_part_fills_its_bore_and_ignores_specks():
    image = np.full((40, 40), 30, np.uint8)
    image[5:35, 5:35] = 200  # the part
    image[15:25, 15:25] = 30  # its bore
    image[0:2, 38:40] = 200  # a bright speck on the border
    part = m.part_mask(image)
    assert part.sum() == 30 * 30
    assert part[20, 20] and not part[0, 39]


def test_part_mask_handles_a_dark_part_on_a_bright_background():
    image = np.full((30, 30), 220, np.uint8)
    image[10:20, 8:22] = 40
    assert m.part_mask(image).sum() == 10 * 14


def test_off_part_energy():
    cam = np.array([[2.0, 0.0], [1.0, 1.0]], np.float32)
    part = np.array([[True, True], [False, True]])
    assert m.off_part_energy(cam, part) == pytest.approx(1 / 4)


def test_normalized_entropy_is_zero_for_one_pixel_and_one_for_flat():
    peak = np.zeros((4, 4), np.float32)
    peak[2, 2] = 1.0
    assert m.normalized_entropy(peak) == 0.0
    assert m.normalized_entropy(np.ones((4, 4))) == pytest.approx(1.0)
    half = np.zeros((4, 4), np.float32)
    half[:2] = 1.0  # uniform over 8 of 16 pixels: log 8 / log 16
    assert m.normalized_entropy(half) == pytest.approx(3 / 4)


def test_blob_count_counts_regions_above_the_threshold():
    cam = np.zeros((20, 20), np.float32)
    cam[1:5, 1:5] = 1.0
    cam[10:15, 10:15] = 0.9
    cam[18, 18] = 0.8  # too small at min_area 4
    assert m.blob_count(cam, threshold=0.5, min_area=4) == 2
    assert m.blob_count(np.zeros((5, 5))) == 0


def test_mean_intensity():
    assert m.mean_intensity(np.array([[0.0, 0.5], [1.0, 0.5]])) == pytest.approx(0.5)


def test_localization_bundles_the_mask_measures():
    cam = np.zeros((224, 224), np.float32)
    cam[100:120, 100:120] = 1.0
    mask = np.zeros((224, 224), bool)
    mask[100:120, 100:120] = True
    out = m.localization(cam, mask, threshold=0.5)
    assert out["pointing_hit"] == 1.0 and out["box_iou"] == 1.0
    assert out["box_hit@0.3"] == 1.0 and out["energy_inside"] == 1.0


def test_mismatched_mask_names_the_fix():
    with pytest.raises(ExplainError, match="cam_to_original"):
        m.energy_inside(np.zeros((4, 4)), np.zeros((5, 5), bool))


def test_disagreement_is_zero_for_identical_maps_and_two_for_opposite_ones():
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    assert m.disagreement([ramp, ramp]) == pytest.approx(0.0, abs=1e-6)
    assert m.disagreement([ramp, 1 - ramp]) == pytest.approx(2.0, abs=1e-6)
    # Three maps: pairs (a, a) = 0, (a, 1-a) = 2, (a, 1-a) = 2 -> mean 4/3.
    assert m.disagreement([ramp, ramp, 1 - ramp]) == pytest.approx(4 / 3, abs=1e-6)


def test_disagreement_of_one_map_or_a_flat_pair_is_defined():
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    assert m.disagreement([ramp]) == 0.0
    assert m.disagreement([ramp, np.zeros_like(ramp)]) == pytest.approx(1.0)


# ---------------------------------------------------------------- instance localization


def pinholes(n: int = 7) -> np.ndarray:
    mask = np.zeros((100, 100), bool)
    for i in range(n):
        mask[40:43, 10 + 10 * i : 13 + 10 * i] = True  # seven 3x3 pinholes in a row
    return mask


def test_one_box_around_a_pinhole_cluster_finds_every_pinhole():
    from explain.metrics import box_iou, component_boxes, match_instances

    mask = pinholes()
    box = (8, 35, 80, 50)  # one box around the cluster: a "miss" by best IoU
    assert max(box_iou(box, g) for g in component_boxes(mask)) < 0.5
    match = match_instances([box], mask)
    assert len(match.instances) == 7 and match.recall == 1.0 and match.precision == 1.0


def test_a_missed_second_instance_and_a_stray_box_count():
    from explain.metrics import match_instances

    mask = np.zeros((100, 100), bool)
    mask[10:20, 10:20] = True  # found
    mask[70:80, 70:80] = True  # no box
    boxes = [(9, 9, 21, 21), (40, 40, 50, 50), (15, 15, 30, 30)]  # hit, stray, covers < half
    match = match_instances(boxes, mask)
    assert match.found == [True, False] and match.recall == 0.5
    assert match.box_correct == [True, False, False] and match.precision == pytest.approx(1 / 3)
    assert match.covered_by == [[0], []]


def test_whole_image_boxes_find_nothing_and_good_parts_have_no_recall():
    from explain.metrics import match_instances

    whole = match_instances([(0, 0, 100, 100)], pinholes())
    assert whole.recall == 0.0 and whole.precision == 0.0
    good = match_instances([(1, 1, 5, 5)], np.zeros((20, 20), bool))
    assert good.recall is None and good.precision == 0.0
    assert match_instances([], np.zeros((20, 20), bool)).precision is None
    with pytest.raises(ExplainError, match="2-D"):
        match_instances([], np.zeros((2, 2, 2), bool))

"""Simulated defects for DRAEM: seeded, masks exactly the changed pixels, areas in range."""

import numpy as np
import pytest

from anomaly.pseudo_defects import (
    PseudoDefectConfig,
    PseudoDefectError,
    add_pseudo_defect,
    corrupt_batch,
)


def _good(seed: int = 0, size: int = 64) -> np.ndarray:
    """A textured gray disk on a dark background, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 0.1, np.float32)
    img[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.4) ** 2] = 0.6
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1).astype(np.float32)


def test_the_same_seed_gives_the_same_defect_and_another_seed_a_different_one():
    img = _good()
    a = add_pseudo_defect(img, np.random.default_rng(5))
    b = add_pseudo_defect(img, np.random.default_rng(5))
    c = add_pseudo_defect(img, np.random.default_rng(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("seed", range(12))
def test_the_mask_is_exactly_the_set_of_visibly_changed_pixels(seed):
    img = _good(seed)
    config = PseudoDefectConfig(min_change=0.03)
    donors = [_good(seed + 100)]
    out, mask = add_pseudo_defect(img, np.random.default_rng(seed), config, donors)
    changed = np.abs(out - img)
    assert mask.any()
    assert np.all(changed[mask == 0] == 0)
    assert np.all(changed[mask == 1] > config.min_change)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_mask_areas_stay_within_the_configured_range():
    config = PseudoDefectConfig(min_area=0.002, max_area=0.02)
    areas = []
    for seed in range(40):
        _, mask = add_pseudo_defect(_good(seed), np.random.default_rng(seed), config)
        areas.append(mask.mean())
    areas = np.array(areas)
    nonempty = areas[areas > 0]
    assert len(nonempty) >= 36  # an empty mask is allowed only when no try fits the range
    assert nonempty.min() >= 0.002 and nonempty.max() <= 0.02
    assert nonempty.max() > 2 * nonempty.min()  # sizes vary


def test_defects_stay_inside_the_given_region():
    img = _good()
    region = np.zeros(img.shape, bool)
    region[20:44, 20:44] = True
    for seed in range(10):
        out, mask = add_pseudo_defect(img, np.random.default_rng(seed), region=region)
        assert not mask[~region].any()
        assert np.array_equal(out[~region], img[~region])


def test_corrupt_batch_applies_defects_with_the_configured_probability():
    x = np.stack([_good(s) for s in range(8)])[..., None]
    none, masks0 = corrupt_batch(x, np.random.default_rng(0), PseudoDefectConfig(probability=0))
    assert np.array_equal(none, x) and not masks0.any()
    out, masks = corrupt_batch(x, np.random.default_rng(0), PseudoDefectConfig(probability=1))
    assert out.shape == x.shape and masks.shape == x.shape
    assert all(m.any() for m in masks)


def test_impossible_area_settings_are_refused():
    with pytest.raises(PseudoDefectError, match="min_area"):
        PseudoDefectConfig(min_area=0.1, max_area=0.01)


def test_several_defects_per_image_still_mask_exactly_the_changed_pixels():
    x = np.stack([_good(s) for s in range(6)])[..., None]
    config = PseudoDefectConfig(probability=1, max_defects=3)
    out, masks = corrupt_batch(x, np.random.default_rng(2), config)
    changed = np.abs(out - x)
    assert np.all(changed[masks == 0] == 0)
    assert np.all(changed[masks == 1] > config.min_change)

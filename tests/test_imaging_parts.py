"""imaging.parts: one part segmentation, two shapes (silhouette for heat metrics, dilated hull
for anomaly maps)."""

from __future__ import annotations

import cv2
import numpy as np

from imaging.parts import part_mask


def _impeller(size=96, dark_part=False, rim_bite=False):
    img = np.full((size, size), 40, np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 3, 200, -1)
    cv2.circle(img, (size // 2, size // 2), size // 12, 40, -1)  # the bore
    if rim_bite:
        cv2.circle(img, (size // 2 + size // 3, size // 2), size // 12, 40, -1)
    return 255 - img if dark_part else img


def test_silhouette_fills_the_bore_and_region_also_keeps_a_bite_out_of_the_rim():
    img = _impeller(rim_bite=True)
    silhouette, region = part_mask(img), part_mask(img, region=True, blur=True)
    centre, bite = (48, 48), (48, 48 + 32)
    assert silhouette[centre] and region[centre]  # the bore belongs to the part
    assert not silhouette[bite] and region[bite]  # the hull keeps the chipped rim inside
    assert region.sum() > silhouette.sum() and not region[0, 0]


def test_polarity_follows_the_border_and_float_input_gives_the_same_mask():
    bright, dark = part_mask(_impeller()), part_mask(_impeller(dark_part=True))
    assert np.array_equal(bright, dark)
    assert np.array_equal(part_mask(_impeller().astype(np.float32) / 255), bright)


def test_a_texture_has_no_single_part_so_the_region_is_everything():
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    assert part_mask(texture, region=True, blur=True).all()
    assert part_mask(np.zeros((32, 32), np.uint8)).sum() == 0  # nothing to find: empty

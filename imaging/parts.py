"""Where the part is in an image: one segmentation for the heatmap metrics and the anomaly maps.

Otsu's threshold on the gray image (optionally blurred first), the polarity that touches the
image border less (a bright casting on a dark belt, or a dark part on a light table), then the
largest connected component. Two shapes of the result:

- the silhouette (default): that component with its holes filled, so an impeller's bore belongs
  to the part. `explain.metrics` measures heat off the part with it;
- `region=True`: the component's convex hull, dilated by 1/32 of the image height, so bites out
  of the rim (edge chips) and protrusions (burrs) stay inside; anomaly maps are kept there.
  An image without one distinct part (a texture: one mode in the histogram, or a component
  outside [min_frac, max_frac] of the image) gets an all-true region instead.
"""

from __future__ import annotations

import cv2
import numpy as np


def _gray_u8(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) from uint8 or [0, 1] float images, gray or RGB."""
    gray = np.asarray(image)
    if gray.ndim == 3:
        gray = gray[..., 0] if gray.shape[2] == 1 else cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY)
    if gray.dtype != np.uint8:
        gray = np.clip(np.round(gray * 255 if gray.max() <= 1.0 else gray), 0, 255)
        gray = gray.astype(np.uint8)
    return gray


def part_mask(
    image: np.ndarray,
    region: bool = False,
    blur: bool = False,
    min_frac: float = 0.05,
    max_frac: float = 0.95,
    min_separability: float = 0.8,
) -> np.ndarray:
    """Bool (H, W) mask of the part: its silhouette, or with `region` its dilated convex hull
    (see the module docstring). `blur`: a 5x5 Gaussian before Otsu (ignores fine texture)."""
    gray = _gray_u8(image)
    if blur:
        gray = cv2.GaussianBlur(gray, (5, 5), 0)
    _, fg = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
    if border.mean() > 0.5:
        fg = 1 - fg
    everything = np.ones(gray.shape, dtype=bool)
    if region and not _one_part(gray, fg.astype(bool), min_separability):
        return everything
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if count <= 1:
        return everything if region else np.zeros(gray.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = (labels == largest).astype(np.uint8)
    if not region:
        contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(part, contours, -1, 1, thickness=cv2.FILLED)
        return part.astype(bool)
    if not min_frac <= stats[largest, cv2.CC_STAT_AREA] / gray.size <= max_frac:
        return everything
    hull = np.zeros(gray.shape, dtype=np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(part)), 1)
    radius = max(1, gray.shape[0] // 32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(hull, kernel).astype(bool)


def _one_part(gray: np.ndarray, fg: np.ndarray, min_separability: float) -> bool:
    """Two modes (a part on a background), not one (a texture): Otsu's separability, the
    between-class share of the variance, at least `min_separability`."""
    if fg.all() or not fg.any():
        return False
    values = gray.astype(np.float64)
    share = fg.mean()
    between = share * (1 - share) * (values[fg].mean() - values[~fg].mean()) ** 2
    return between >= min_separability * max(values.var(), 1e-9)

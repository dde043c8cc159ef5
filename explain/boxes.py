"""Heatmap -> defect boxes: threshold, connected regions (OpenCV), one scored box per region.

Coordinates are pixels of the heatmap, x_min/y_min inclusive and x_max/y_max exclusive, so
width = x_max - x_min; map them to the original image with `imaging.Preprocess.box_to_original`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from explain.layers import ExplainError


@dataclass(frozen=True)
class Box:
    """One detected region: corners (inclusive min, exclusive max), peak and mean heat inside."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    score: float
    mean: float
    area: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)


def threshold_value(cam: np.ndarray, threshold: str | float = "otsu") -> float:
    """The heat level a pixel must reach: Otsu on the 8-bit map, or a fraction of its maximum."""
    cam = _check_cam(cam)
    peak = float(cam.max())
    if peak <= 0:
        return np.inf
    if threshold == "otsu":
        u8 = np.round(cam / peak * 255).astype(np.uint8)
        level, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        # Otsu keeps pixels strictly above `level`; the next 8-bit step is the first kept value.
        return (level + 1) / 255 * peak
    if isinstance(threshold, str) or not 0 < float(threshold) <= 1:
        raise ExplainError(f"threshold must be 'otsu' or a fraction in (0, 1], got {threshold!r}")
    return float(threshold) * peak


def hot_mask(cam: np.ndarray, threshold: str | float = "otsu") -> np.ndarray:
    """Boolean mask of the pixels at or above the threshold."""
    return _check_cam(cam) >= threshold_value(cam, threshold)


def cam_to_boxes(
    cam: np.ndarray,
    threshold: str | float = "otsu",
    min_area: int = 16,
    merge: int | None = None,
) -> list[Box]:
    """Boxes around the hot regions of one heatmap, best score first.

    threshold: "otsu" or a fraction of the map's maximum. min_area: regions with fewer pixels
    are dropped. merge: None keeps one box per 8-connected region; an int g merges boxes that
    overlap or lie within g pixels of each other (repeatedly), keeping the highest score.
    """
    cam = _check_cam(cam)
    mask = hot_mask(cam, threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area:
            continue
        inside = cam[labels == label]
        boxes.append(Box(x, y, x + w, y + h, float(inside.max()), float(inside.mean()), area))
    if merge is not None:
        boxes = merge_boxes(boxes, gap=int(merge))
    return sorted(boxes, key=lambda b: -b.score)


def merge_boxes(boxes: list[Box], gap: int = 0) -> list[Box]:
    """Union boxes that overlap or are at most `gap` pixels apart, until none do."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if _near(boxes[i], boxes[j], gap):
                    boxes[i] = _union(boxes[i], boxes.pop(j))
                    merged = True
                    break
            if merged:
                break
    return boxes


def _near(a: Box, b: Box, gap: int) -> bool:
    return (
        a.x_min < b.x_max + gap
        and b.x_min < a.x_max + gap
        and a.y_min < b.y_max + gap
        and b.y_min < a.y_max + gap
    )


def _union(a: Box, b: Box) -> Box:
    area = a.area + b.area
    return Box(
        min(a.x_min, b.x_min),
        min(a.y_min, b.y_min),
        max(a.x_max, b.x_max),
        max(a.y_max, b.y_max),
        max(a.score, b.score),
        (a.mean * a.area + b.mean * b.area) / area,
        area,
    )


def _check_cam(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ExplainError(f"a heatmap must be 2-D (H, W), got shape {cam.shape}")
    return cam

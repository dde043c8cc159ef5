"""Where is the defect: a pixel threshold calibrated on good parts, predicted masks, boxes, AUPRO.

The pixel threshold is a high percentile of the anomaly-map values of held-out good parts
(inside the part), so a good part lights up on about (100 - q) % of its pixels at most; pixels
at or above it form the predicted defect mask, and each connected region of the mask becomes
one box. AUPRO (Bergmann et al., MVTec AD, IJCV 2021) is the area under the per-region overlap
curve up to a false-positive rate of 30 %, divided by 0.3: unlike pixel AUROC it weighs a small
scratch as much as a large blowhole.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class LocalizationError(ValueError):
    """Maps, masks or settings that localization cannot use."""


def calibrate_pixel_threshold(
    good_maps: np.ndarray, q: float = 99.9, regions: np.ndarray | None = None
) -> float:
    """The `q`-th percentile of good parts' anomaly-map values (only inside `regions` if given)."""
    maps = np.asarray(good_maps, dtype=np.float32)
    if maps.ndim != 3 or len(maps) == 0:
        raise LocalizationError(f"good maps must be a non-empty (N, H, W) stack, got {maps.shape}")
    if not 0 < q < 100:
        raise LocalizationError(f"pixel percentile must be in (0, 100), got {q}")
    values = maps[np.asarray(regions, bool)] if regions is not None else maps.ravel()
    if values.size == 0:
        raise LocalizationError("the part masks of the good images are all empty")
    return float(np.percentile(values, q))


def predicted_mask(amap: np.ndarray, pixel_threshold: float) -> np.ndarray:
    """Bool mask of the pixels at or above the pixel threshold."""
    return np.asarray(amap) >= float(pixel_threshold)


@dataclass(frozen=True)
class RegionBox:
    """One predicted defect region: corners (min inclusive, max exclusive), peak and area."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    score: float
    area: int


def mask_to_boxes(
    mask: np.ndarray, amap: np.ndarray | None = None, min_area: int = 1
) -> list[RegionBox]:
    """One box per 8-connected region of `mask` with at least `min_area` pixels, highest peak
    of `amap` first (largest first without a map)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise LocalizationError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    if amap is not None and np.shape(amap) != mask.shape:
        raise LocalizationError(f"map {np.shape(amap)} and mask {mask.shape} differ in shape")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    boxes = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area:
            continue
        peak = float(np.asarray(amap)[labels == label].max()) if amap is not None else float(area)
        boxes.append(RegionBox(x, y, x + w, y + h, peak, area))
    return sorted(boxes, key=lambda b: (-b.score, -b.area))


class AuproAccumulator:
    """Collects per-region and good-pixel histograms image by image, then integrates AUPRO.

    Thresholds are the edges of `bins` equal bins over [0, top]; with the values' own unique
    levels as edges (`edges=`) the result is exact.
    """

    def __init__(self, top: float | None = None, bins: int = 20_000, edges=None) -> None:
        if edges is None:
            if top is None or top <= 0:
                raise LocalizationError("AUPRO needs the largest map value (top > 0) or edges")
            edges = np.linspace(0.0, float(top), bins + 1)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.regions: list[np.ndarray] = []
        self.negatives = np.zeros(len(self.edges) - 1)

    def add(self, amap: np.ndarray, truth: np.ndarray) -> None:
        amap = np.asarray(amap, dtype=np.float64)
        truth = np.asarray(truth, dtype=bool)
        if amap.shape != truth.shape:
            raise LocalizationError(f"map {amap.shape} and mask {truth.shape} differ in shape")
        self.negatives += np.histogram(amap[~truth], self.edges)[0]
        count, labels = cv2.connectedComponents(truth.astype(np.uint8), connectivity=8)
        for label in range(1, count):
            self.regions.append(np.histogram(amap[labels == label], self.edges)[0])

    def result(self, max_fpr: float = 0.3) -> float:
        if not self.regions or self.negatives.sum() == 0:
            raise LocalizationError("AUPRO needs at least one defect region and good pixels")
        if not 0 < max_fpr <= 1:
            raise LocalizationError(f"max_fpr must be in (0, 1], got {max_fpr}")

        # fraction at or above each bin's lower edge, from the highest threshold down
        def above(hist: np.ndarray) -> np.ndarray:
            return np.cumsum(hist[::-1])[::-1] / hist.sum()

        pro = np.mean([above(np.asarray(r, np.float64)) for r in self.regions], axis=0)[::-1]
        fpr = above(self.negatives)[::-1]
        fpr, pro = np.r_[0.0, fpr], np.r_[0.0, pro]
        keep = fpr <= max_fpr
        x, y = fpr[keep], pro[keep]
        if x[-1] < max_fpr:  # interpolate the curve at max_fpr
            nxt = int(np.argmax(fpr > max_fpr))
            y_cut = np.interp(max_fpr, [fpr[nxt - 1], fpr[nxt]], [pro[nxt - 1], pro[nxt]])
            x, y = np.r_[x, max_fpr], np.r_[y, y_cut]
        return float(np.trapezoid(y, x) / max_fpr)


def aupro(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3) -> float:
    """Exact AUPRO of anomaly maps (N, H, W) against true masks (N, H, W)."""
    maps = np.asarray(maps, dtype=np.float64)
    levels = np.unique(maps)
    edges = np.r_[levels, levels[-1] + 1.0]  # one bin per distinct value
    acc = AuproAccumulator(edges=edges)
    for amap, truth in zip(maps, np.asarray(masks, bool), strict=True):
        acc.add(amap, truth)
    return acc.result(max_fpr)

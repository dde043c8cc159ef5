"""Post-processing shared by every anomaly detector: image scores from maps, the part mask,
thresholds chosen on good parts, and the decision rule (separate from the models, as in
anomalib)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from store.thresholds import decide


class ScoringError(ValueError):
    """Inputs to scoring or threshold calibration are unusable."""


def as_stack(x: np.ndarray) -> np.ndarray:
    """(N, S, S) float32 from (N, S, S) or (N, S, S, 1)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise ScoringError(f"expected images shaped (N, H, W) or (N, H, W, 1), got {x.shape}")
    return x


def part_mask(
    image: np.ndarray,
    min_frac: float = 0.05,
    max_frac: float = 0.95,
    min_separability: float = 0.8,
) -> np.ndarray:
    """Bool mask of the part (largest bright region, convex hull, slightly dilated).

    The hull keeps bites out of the rim (edge chips) inside; the dilation keeps protrusions
    (burrs). Images without a distinct part (textures, close-ups) get an all-true mask.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[..., 0]
    u8 = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(u8, (5, 5), 0)
    level, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    full = np.ones(img.shape, dtype=bool)
    fg = binary > 0
    if fg.all() or not fg.any():
        return full
    # Otsu's separability (between-class / total variance) tells a part on a background
    # (two modes) from a texture (one mode)
    values = blurred.astype(np.float64)
    between = fg.mean() * (1 - fg.mean()) * (values[fg].mean() - values[~fg].mean()) ** 2
    if between < min_separability * max(values.var(), 1e-9):
        return full
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n < 2:
        return full
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    frac = stats[largest, cv2.CC_STAT_AREA] / img.size
    if not min_frac <= frac <= max_frac:
        return full
    points = cv2.findNonZero((labels == largest).astype(np.uint8))
    hull = cv2.convexHull(points)
    mask = np.zeros(img.shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    radius = max(1, img.shape[0] // 32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask, kernel).astype(bool)


def top_k_mean(maps: np.ndarray, top_k: float) -> np.ndarray:
    """Image scores: mean of the top `top_k` percent of each map's pixels (at least one)."""
    maps = as_stack(maps)
    if not 0 < top_k <= 100:
        raise ScoringError(f"top_k is a percentage of pixels in (0, 100], got {top_k}")
    flat = maps.reshape(len(maps), -1)
    k = max(1, int(round(flat.shape[1] * top_k / 100.0)))
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1)


def percentile_threshold(good_scores: Sequence[float], q: float = 99.0) -> float:
    """Threshold from held-out good parts: about (100 - q) % of them will be flagged."""
    scores = np.asarray(good_scores, dtype=np.float64)
    if scores.size == 0:
        raise ScoringError("percentile threshold needs held-out good scores; got none")
    if not 0 < q <= 100:
        raise ScoringError(f"percentile must be in (0, 100], got {q}")
    return float(np.percentile(scores, q))


def f1_optimal_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of `score >= threshold` with defects as positives.

    The threshold lies halfway between neighbouring scores so that the rule is stable.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ScoringError(f"scores {s.shape} and labels {y.shape} must be equal-length vectors")
    if y.all() or not y.any():
        raise ScoringError("the F1 threshold needs both good and defective labelled images")
    values = np.unique(s)[::-1]  # descending candidate cut points
    below = np.append(values[1:], values[-1] - 1.0)
    cuts = (values + below) / 2.0  # flag everything >= values[i]
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    f1s = []
    for cut in cuts:
        flagged = decide(s_sorted, cut)
        tp = int(np.sum(flagged & y_sorted))
        fp = int(np.sum(flagged & ~y_sorted))
        fn = int(np.sum(~flagged & y_sorted))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    best = int(np.argmax(f1s))
    return float(cuts[best]), float(f1s[best])


def is_anomalous(scores: Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """The decision rule of every run: a score at or above the threshold means anomalous."""
    return decide(scores, threshold)

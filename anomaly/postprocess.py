"""Post-processing shared by every anomaly detector: image scores from maps, the part region,
thresholds chosen on good parts, and the decision rule (separate from the models, as in
anomalib)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imaging.parts import part_mask
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


def part_region(image: np.ndarray) -> np.ndarray:
    """Where anomaly maps are kept: the part's dilated convex hull, all true on a texture
    (imaging.parts.part_mask with region=True, blurred first)."""
    return part_mask(image, region=True, blur=True)


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

"""Does the model really use what the heatmap shows? Perturbation metrics of faithfulness.

- Deletion / insertion AUC (Petsiuk et al., RISE 2018): remove (or restore) pixels in order of
  heat and integrate the class probability over the fraction removed.
- ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
  2022): remove the most (MoRF) or least (LeRF) relevant fraction of pixels and fill them by
  noisy linear imputation, so the shape of the removed region does not leak the answer; the
  combined score is the mean over fractions of (drop when removing the least relevant minus
  drop when removing the most relevant) / 2. Higher is more faithful.

`predict` is always a function from a batch (B, H, W, C) of preprocessed images to the
target-class probability (B,); every perturbed copy of one image goes through it in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from explain.layers import ExplainError

Predict = Callable[[np.ndarray], np.ndarray]
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Neighbour weights of the imputation: direct neighbours count twice as much as diagonal ones.
_NEIGHBOURS = [(-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6)] + [
    (dy, dx, 1 / 12) for dy in (-1, 1) for dx in (-1, 1)
]


def _check(image: np.ndarray, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    cam = np.asarray(cam, dtype=np.float64)
    if image.ndim != 3 or cam.shape != image.shape[:2]:
        raise ExplainError(
            f"cam shape {cam.shape} does not match image shape {image.shape}: compute the map "
            "at the preprocessed image's size"
        )
    if not np.all(np.isfinite(cam)):
        raise ExplainError("cam has NaN or infinite values")
    return image, cam


def _ranked_masks(cam: np.ndarray, fractions: Sequence[float], most_first: bool) -> np.ndarray:
    """(F, H, W) boolean: the top (or bottom) fraction of pixels by heat, ties broken stably."""
    order = np.argsort(-cam.ravel() if most_first else cam.ravel(), kind="stable")
    masks = np.zeros((len(fractions), cam.size), dtype=bool)
    for i, fraction in enumerate(fractions):
        masks[i, order[: int(round(fraction * cam.size))]] = True
    return masks.reshape(len(fractions), *cam.shape)


def noisy_linear_impute(
    image: np.ndarray, removed: np.ndarray, noise: float = 0.01, seed: int = 0
) -> np.ndarray:
    """Fill `removed` pixels with the weighted mean of their 8 neighbours, solved jointly.

    Each removed pixel equals the weighted average of its in-image neighbours (known or
    removed), a sparse linear system; Gaussian noise (std `noise` times the image's value range)
    is added to the filled pixels, as ROAD prescribes.
    """
    image = np.asarray(image, dtype=np.float64)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    h, w, channels = image.shape
    removed = np.asarray(removed, dtype=bool)
    out = image.copy()
    ys, xs = np.nonzero(removed)
    if ys.size == 0:
        return out[..., 0].astype(np.float32) if squeeze else out.astype(np.float32)
    index = -np.ones((h, w), dtype=np.int64)
    index[ys, xs] = np.arange(ys.size)
    rows, cols, vals = [], [], []
    rhs = np.zeros((ys.size, channels))
    total = np.zeros(ys.size)
    for dy, dx, weight in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        total[inside] += weight
        unknown = np.zeros_like(inside)
        unknown[inside] = removed[ny[inside], nx[inside]]
        known = inside & ~unknown
        rows.append(np.nonzero(unknown)[0])
        cols.append(index[ny[unknown], nx[unknown]])
        vals.append(np.full(unknown.sum(), -weight))
        rhs[known] += weight * image[ny[known], nx[known]]
    rows.append(np.arange(ys.size))
    cols.append(np.arange(ys.size))
    vals.append(total)
    system = sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(ys.size, ys.size),
    )
    filled = spsolve(system, rhs).reshape(ys.size, channels)
    spread = float(image.max() - image.min()) or 1.0
    rng = np.random.default_rng(seed)
    out[ys, xs] = filled + rng.normal(0.0, noise * spread, filled.shape)
    return out[..., 0].astype(np.float32) if squeeze else out.astype(np.float32)


def deletion_insertion_auc(
    predict: Predict,
    image: np.ndarray,
    cam: np.ndarray,
    steps: int = 16,
    baseline: np.ndarray | None = None,
) -> tuple[float, float]:
    """Deletion and insertion AUC of one map: low deletion and high insertion mean faithful.

    Pixels are ranked by heat; deletion replaces the top fraction k/steps with `baseline`
    (default zeros), insertion starts from the baseline and restores them. Returns trapezoid
    AUCs of the probability over the fraction in [0, 1].
    """
    image, cam = _check(image, cam)
    baseline = np.zeros_like(image) if baseline is None else np.asarray(baseline, np.float32)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    keep = _ranked_masks(cam, fractions, most_first=True)[..., None]
    batch = np.concatenate([np.where(keep, baseline, image), np.where(keep, image, baseline)])
    scores = np.asarray(predict(batch), dtype=np.float64).ravel()
    half = len(fractions)
    return (
        float(np.trapezoid(scores[:half], fractions)),
        float(np.trapezoid(scores[half:], fractions)),
    )


def road(
    predict: Predict,
    image: np.ndarray,
    cam: np.ndarray,
    fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    seed: int = 0,
) -> dict[str, float | list[float]]:
    """ROAD of one map: probability drops under MoRF and LeRF removal, and their combination.

    Returns `morf` and `lerf` (probability change per fraction, usually negative), and `road`
    = mean((lerf - morf) / 2): large when removing the hot pixels hurts much more than removing
    the cold ones.
    """
    image, cam = _check(image, cam)
    if not fractions or not all(0.0 < f < 1.0 for f in fractions):
        raise ExplainError(f"ROAD fractions must lie strictly between 0 and 1, got {fractions}")
    batch = [image]
    for most_first in (True, False):
        for k, removed in enumerate(_ranked_masks(cam, fractions, most_first)):
            batch.append(noisy_linear_impute(image, removed, noise=noise, seed=seed + k))
    scores = np.asarray(predict(np.stack(batch)), dtype=np.float64).ravel()
    n = len(fractions)
    morf, lerf = scores[1 : 1 + n] - scores[0], scores[1 + n :] - scores[0]
    return {
        "morf": morf.tolist(),
        "lerf": lerf.tolist(),
        "road": float(np.mean((lerf - morf) / 2.0)),
    }

"""How heat becomes colour: per-image or run-wide absolute scaling, and "no evidence" checks.

`compute_cams(..., normalize=False)` gives raw maps: the ReLU'd CAM (or |gradient| for the
saliency family) in the model's own units. Two ways to put them on [0, 1]:

* per image ("image"): min-max per map, so 1 is the hottest pixel *of that image*. Shapes are
  comparable, strengths are not: a good part with almost no defect evidence looks as hot as a
  defective one.
* absolute ("absolute"): raw / reference, clipped to [0, 1], with one reference per run,
  method, layer and class, calibrated as a high quantile (default 0.99) of the per-image peaks
  on reference images (e.g. the run's validation split). Evidence strength is comparable
  across parts: a good part with little evidence looks cold.

A map with no positive value at all has no evidence for the class at that layer (a Grad-CAM
whose ReLU removed everything, for example); `evidence` says so instead of drawing a blank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from explain.layers import ExplainError

SCALES = ("image", "absolute")
DEFAULT_QUANTILE = 0.99


@dataclass(frozen=True)
class Evidence:
    """What a raw map holds: its peak, the share of pixels with any heat, and a verdict."""

    peak: float
    positive_share: float
    blank: bool
    message: str


def calibrate_reference(
    raw_maps: Sequence[np.ndarray], quantile: float = DEFAULT_QUANTILE
) -> float:
    """The run-wide reference: `quantile` of the per-image peaks of raw maps (model units).

    Raises ExplainError when no map holds positive heat (nothing to calibrate on)."""
    if not 0 < quantile <= 1:
        raise ExplainError(f"quantile must be in (0, 1], got {quantile}")
    peaks = np.array([float(np.max(_check(m))) for m in raw_maps], dtype=np.float64)
    positive = peaks[peaks > 0]
    if positive.size == 0:
        raise ExplainError(
            f"none of the {len(peaks)} reference maps holds positive heat: cannot calibrate an "
            "absolute scale at this layer/class; use per-image scaling or another layer"
        )
    return float(np.quantile(positive, quantile))


def scale_map(raw: np.ndarray, mode: str = "image", reference: float | None = None) -> np.ndarray:
    """One raw map -> [0, 1]: min-max per image, or raw / reference (clipped) for "absolute".

    A map without positive heat becomes all zeros in both modes."""
    raw = _check(raw)
    if mode not in SCALES:
        raise ExplainError(f"scale must be one of {SCALES}, got {mode!r}")
    if float(raw.max()) <= 0:
        return np.zeros_like(raw)
    if mode == "absolute":
        if reference is None or not reference > 0:
            raise ExplainError(f"absolute scaling needs a positive reference, got {reference!r}")
        return np.clip(raw / reference, 0.0, 1.0).astype(np.float32)
    low, high = float(raw.min()), float(raw.max())
    if high - low <= 1e-5 * max(abs(high), abs(low)):
        return np.zeros_like(raw)
    return ((raw - low) / (high - low)).astype(np.float32)


def evidence(raw: np.ndarray, reference: float | None = None, faint: float = 0.02) -> Evidence:
    """Is there anything to see? Blank when no pixel has positive heat, or (with a reference)
    when the peak is below `faint` of the run-wide reference."""
    raw = _check(raw)
    peak = float(raw.max())
    share = float((raw > 0).mean())
    if peak <= 0:
        return Evidence(peak, share, True, "no positive evidence for this class at this layer")
    if reference is not None and reference > 0 and peak < faint * reference:
        return Evidence(
            peak,
            share,
            True,
            f"evidence below {faint:.0%} of the run-wide reference (peak {peak / reference:.1%})",
        )
    return Evidence(peak, share, False, "")


def _check(raw: np.ndarray) -> np.ndarray:
    raw = np.nan_to_num(np.asarray(raw, dtype=np.float32))
    if raw.ndim != 2:
        raise ExplainError(f"a heatmap must be 2-D (H, W), got shape {raw.shape}")
    return raw

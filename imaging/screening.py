"""Flags for images far from what a model was trained on: scored anyway, but never silently.

A 1x1 thumbnail blown up to the model's input, a nearly black frame (often 12-bit data read as
16-bit, or a closed shutter) or a blank one gives a confident-looking number that means
nothing; these checks turn that into a warning shown next to the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# An image is flagged when the model input is this many times larger than its shorter side.
MAX_UPSCALE = 4.0
DARK_MEAN, BRIGHT_MEAN, FLAT_STD = 8.0, 247.0, 2.0


def screen_image(pixels: np.ndarray, model_size: int | Sequence[int]) -> list[str]:
    """Warnings for an image decoded by read_image, about to be resized to `model_size`
    (one side, or (height, width))."""
    notes: list[str] = []
    height, width = pixels.shape[:2]
    model_h, model_w = (model_size, model_size) if isinstance(model_size, int) else model_size
    upscale = max(model_h / max(height, 1), model_w / max(width, 1))
    if upscale > MAX_UPSCALE:
        notes.append(
            f"image is only {width}x{height} px, upscaled {upscale:.0f}x "
            f"to the model's {model_w}x{model_h} px input: result unreliable"
        )
    values = np.asarray(pixels, dtype=np.float32)
    mean, std = float(values.mean()), float(values.std())
    if mean < DARK_MEAN:
        notes.append(f"nearly black (mean gray {mean:.1f}): check exposure or the bit depth")
    elif mean > BRIGHT_MEAN:
        notes.append(f"nearly white (mean gray {mean:.1f}): check exposure")
    elif std < FLAT_STD:
        notes.append(f"nearly uniform (gray std {std:.2f}): no part visible?")
    return notes


def join_warnings(notes: list[str]) -> str:
    """The `warnings` column's text: notes separated by '; ' ('' when none)."""
    return "; ".join(notes)

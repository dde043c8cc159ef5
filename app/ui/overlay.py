"""The app's drawing helpers; they live in explain.overlay, shared with the line service."""

from explain.overlay import (
    COLORMAPS,
    PRED_COLOR,
    TRUTH_COLOR,
    blend,
    colorize,
    draw_boxes,
    outline_mask,
    png_bytes,
    to_rgb,
)

__all__ = [
    "COLORMAPS",
    "PRED_COLOR",
    "TRUTH_COLOR",
    "blend",
    "colorize",
    "draw_boxes",
    "outline_mask",
    "png_bytes",
    "to_rgb",
]

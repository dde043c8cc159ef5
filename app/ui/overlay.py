"""Drawing for the screen lives in explain.overlay (the inspection report draws the same way)."""

from explain.overlay import (  # noqa: F401
    COLORMAPS,
    MISSED_COLOR,
    PRED_COLOR,
    TRUTH_COLOR,
    blend,
    colorbar,
    colorize,
    draw_boxes,
    outline_mask,
    png_bytes,
    to_rgb,
)

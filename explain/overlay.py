"""Drawing heatmaps for people: colouring, blending, boxes, mask outlines, PNG bytes."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "hot": cv2.COLORMAP_HOT,
}
PRED_COLOR = (255, 196, 0)
TRUTH_COLOR = (0, 220, 90)
MISSED_COLOR = (230, 30, 30)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxW or HxWx3 -> uint8 HxWx3."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def colorize(heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A map in [0, 1] -> RGB uint8 through a named colormap."""
    u8 = np.clip(np.nan_to_num(heat) * 255.0, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(u8, COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def colorbar(colormap: str = "jet", width: int = 256, height: int = 12) -> np.ndarray:
    """A horizontal RGB strip from 0 (left) to 1 (right) in the colormap, for a legend."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return colorize(ramp, colormap)


def blend(image: np.ndarray, heat: np.ndarray, colormap: str = "jet", opacity: float = 0.5):
    """Heatmap over the image; `opacity` is the heatmap's share of each pixel."""
    rgb = to_rgb(image).astype(np.float32)
    colored = colorize(heat, colormap).astype(np.float32)
    return np.clip((1.0 - opacity) * rgb + opacity * colored, 0, 255).astype(np.uint8)


def draw_boxes(
    image: np.ndarray,
    boxes: Iterable[tuple[float, float, float, float]],
    color: tuple[int, int, int] = PRED_COLOR,
    labels: Iterable[str] | None = None,
) -> np.ndarray:
    """Rectangles (x_min, y_min, x_max, y_max) in pixel coordinates, optionally labelled."""
    out = to_rgb(image).copy()
    thickness = max(1, round(min(out.shape[:2]) / 200))
    labels = list(labels) if labels is not None else None
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1)))
        cv2.rectangle(out, p0, p1, color, thickness, lineType=cv2.LINE_AA)
        if labels and labels[i]:
            scale = 0.4 * thickness
            org = (p0[0], max(p0[1] - 4, 10))
            cv2.putText(out, labels[i], org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness)
    return out


def outline_mask(image: np.ndarray, mask: np.ndarray, color=TRUTH_COLOR) -> np.ndarray:
    """The contour of a binary mask drawn over the image."""
    out = to_rgb(image).copy()
    if mask.shape[:2] != out.shape[:2]:
        mask = cv2.resize(mask, out.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if binary.ndim == 3:
        binary = binary[:, :, 0]
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(min(out.shape[:2]) / 200))
    cv2.drawContours(out, contours, -1, color, thickness, lineType=cv2.LINE_AA)
    return out


def png_bytes(image: np.ndarray) -> bytes:
    """RGB or gray uint8 -> PNG file bytes, for download buttons."""
    img = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return buf.tobytes()

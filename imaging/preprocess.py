"""Preprocessing recorded in a run and replayed at inference: gray, crop, CLAHE, resize, scale.

Training, the app and batch prediction all call the same `Preprocess`, rebuilt from run.json with
`Preprocess.from_dict`, so a model never sees pixels prepared differently from its training data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from imaging.decode import to_gray

_CLAHE_CLIP = 2.0
_CLAHE_TILES = (8, 8)


class PreprocessError(ValueError):
    """A preprocessing setting or an input that preprocessing cannot handle."""


@dataclass(frozen=True)
class Preprocess:
    """How raw pixels become model input.

    size: side of the square model input. crop: centre crop applied before resizing; the same
    margin, (1 - crop) / 2 of the shorter side, is cut from every edge, so 1.0 keeps everything
    and a square image keeps a crop x crop fraction. clahe: local contrast equalisation.
    """

    size: int = 224
    crop: float = 1.0
    clahe: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int | np.integer):
            raise PreprocessError(f"size must be an integer, got {self.size!r}")
        if not 8 <= self.size <= 4096:
            raise PreprocessError(f"size must be between 8 and 4096 pixels, got {self.size}")
        if isinstance(self.crop, bool) or not isinstance(self.crop, int | float | np.floating):
            raise PreprocessError(f"crop must be a number in (0, 1], got {self.crop!r}")
        if not 0.0 < float(self.crop) <= 1.0:
            raise PreprocessError(
                f"crop must be in (0, 1] (fraction of the shorter side kept), got {self.crop}"
            )
        if not isinstance(self.clahe, bool | np.bool_):
            raise PreprocessError(f"clahe must be true or false, got {self.clahe!r}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "crop", float(self.crop))
        object.__setattr__(self, "clahe", bool(self.clahe))

    def crop_window(self, original_shape: Sequence[int]) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the region kept from an image of shape (H, W)."""
        height, width = int(original_shape[0]), int(original_shape[1])
        if height <= 0 or width <= 0:
            raise PreprocessError(f"original shape must be positive, got {tuple(original_shape)}")
        margin = int(round((1.0 - self.crop) * min(height, width) / 2.0))
        margin = min(margin, (min(height, width) - 1) // 2)
        return margin, height - margin, margin, width - margin

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """Gray, crop, CLAHE, resize: uint8 (size, size), the form cached for training."""
        gray = to_gray(img)
        y0, y1, x0, x1 = self.crop_window(gray.shape)
        gray = gray[y0:y1, x0:x1]
        if self.clahe:
            clahe = cv2.createCLAHE(clipLimit=_CLAHE_CLIP, tileGridSize=_CLAHE_TILES)
            gray = clahe.apply(np.ascontiguousarray(gray))
        if gray.shape == (self.size, self.size):
            return np.ascontiguousarray(gray)
        shrinking = gray.shape[0] * gray.shape[1] > self.size * self.size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return cv2.resize(gray, (self.size, self.size), interpolation=interpolation)

    def normalize(self, u8: np.ndarray) -> np.ndarray:
        """uint8 (size, size) -> float32 (size, size, 1) in [0, 1]."""
        u8 = np.asarray(u8)
        if u8.dtype != np.uint8:
            raise PreprocessError(f"normalize expects uint8 pixels, got {u8.dtype}")
        if u8.ndim == 3 and u8.shape[2] == 1:
            u8 = u8[:, :, 0]
        if u8.shape != (self.size, self.size):
            raise PreprocessError(
                f"normalize expects shape ({self.size}, {self.size}), got {u8.shape}: "
                "call prepare first"
            )
        return (u8.astype(np.float32) / np.float32(255.0))[:, :, np.newaxis]

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Any decoded image -> model input float32 (size, size, 1)."""
        return self.normalize(self.prepare(img))

    def apply_batch(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """A list of decoded images -> float32 (N, size, size, 1)."""
        prepared = [self.apply(img) for img in images]
        if not prepared:
            return np.zeros((0, self.size, self.size, 1), dtype=np.float32)
        return np.stack(prepared)

    def cam_to_original(self, cam: np.ndarray, original_shape: Sequence[int]) -> np.ndarray:
        """A map over the model input (e.g. a heatmap) -> (H, W) over the original image.

        Undoes the resize and puts the map back into the crop window; pixels the crop cut off
        are 0 because the model never saw them.
        """
        cam = np.asarray(cam, dtype=np.float32)
        if cam.ndim == 3 and cam.shape[2] == 1:
            cam = cam[:, :, 0]
        if cam.ndim != 2:
            raise PreprocessError(f"cam must be 2-D (H, W), got shape {cam.shape}")
        height, width = int(original_shape[0]), int(original_shape[1])
        y0, y1, x0, x1 = self.crop_window((height, width))
        out = np.zeros((height, width), dtype=np.float32)
        out[y0:y1, x0:x1] = cv2.resize(cam, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return out

    def box_to_original(self, box: Any, original_shape: Sequence[int]) -> Any:
        """A box (x_min, y_min, x_max, y_max[, ...]) on the model input -> original pixels.

        Accepts a tuple/list, a namedtuple or a dataclass with x_min/y_min/x_max/y_max fields and
        returns the same kind, extra fields (e.g. a score) untouched; coordinates are rounded
        integers clipped to the image.
        """
        height, width = int(original_shape[0]), int(original_shape[1])
        y0, y1, x0, x1 = self.crop_window((height, width))
        sx, sy = (x1 - x0) / self.size, (y1 - y0) / self.size
        names = ("x_min", "y_min", "x_max", "y_max")
        if dataclasses.is_dataclass(box) and not isinstance(box, type):
            coords = [getattr(box, n) for n in names]
        else:
            coords = list(box)[:4]
            if len(coords) != 4:
                raise PreprocessError(f"a box needs x_min, y_min, x_max, y_max; got {box!r}")
        bx0, by0, bx1, by1 = (float(c) for c in coords)
        mapped = (
            int(np.clip(round(x0 + bx0 * sx), 0, width)),
            int(np.clip(round(y0 + by0 * sy), 0, height)),
            int(np.clip(round(x0 + bx1 * sx), 0, width)),
            int(np.clip(round(y0 + by1 * sy), 0, height)),
        )
        if dataclasses.is_dataclass(box):
            return dataclasses.replace(box, **dict(zip(names, mapped, strict=True)))
        if hasattr(box, "_replace"):
            return box._replace(**dict(zip(box._fields[:4], mapped, strict=True)))
        return (*mapped, *list(box)[4:])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready settings, stored in run.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Preprocess:
        """Rebuild from run.json; unknown keys are refused so no recorded step is silently lost."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PreprocessError(
                f"unknown preprocessing settings {unknown} (known: {sorted(known)}); "
                "this run was made by a newer DefectLens"
            )
        return cls(**data)

"""Preprocessing recorded in a run and replayed at inference: colour, crop, CLAHE, resize, scale.

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
COLORS = ("gray", "rgb")


class PreprocessError(ValueError):
    """A preprocessing setting or an input that preprocessing cannot handle."""


@dataclass(frozen=True)
class Preprocess:
    """How raw pixels become model input.

    size: the model input, one side (square) or (height, width); "96x384" also parses.
    crop: centre crop applied before resizing; the same margin, (1 - crop) / 2 of the shorter
    side, is cut from every edge, so 1.0 keeps everything and a square image keeps a crop x crop
    fraction. clahe: local contrast equalisation (on the lightness of colour images).
    color: "gray" (one channel) or "rgb" (three, as decoded; grayscale files are replicated).
    """

    size: int | tuple[int, int] = 224
    crop: float = 1.0
    clahe: bool = False
    color: str = "gray"

    def __post_init__(self) -> None:
        height, width = parse_size(self.size)
        object.__setattr__(self, "size", height if height == width else (height, width))
        if self.color not in COLORS:
            raise PreprocessError(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if isinstance(self.crop, bool) or not isinstance(self.crop, int | float | np.floating):
            raise PreprocessError(f"crop must be a number in (0, 1], got {self.crop!r}")
        if not 0.0 < float(self.crop) <= 1.0:
            raise PreprocessError(
                f"crop must be in (0, 1] (fraction of the shorter side kept), got {self.crop}"
            )
        if not isinstance(self.clahe, bool | np.bool_):
            raise PreprocessError(f"clahe must be true or false, got {self.clahe!r}")
        object.__setattr__(self, "crop", float(self.crop))
        object.__setattr__(self, "clahe", bool(self.clahe))

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return parse_size(self.size)

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels): what the model takes per image."""
        return (*self.shape, self.channels)

    @property
    def prepared_shape(self) -> tuple[int, ...]:
        """Shape of `prepare`'s uint8 output: (H, W) gray, (H, W, 3) rgb."""
        return self.shape if self.color == "gray" else (*self.shape, 3)

    def crop_window(self, original_shape: Sequence[int]) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the region kept from an image of shape (H, W)."""
        height, width = int(original_shape[0]), int(original_shape[1])
        if height <= 0 or width <= 0:
            raise PreprocessError(f"original shape must be positive, got {tuple(original_shape)}")
        margin = int(round((1.0 - self.crop) * min(height, width) / 2.0))
        margin = min(margin, (min(height, width) - 1) // 2)
        return margin, height - margin, margin, width - margin

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """Colour, crop, CLAHE, resize: uint8 `prepared_shape`, the form cached for training."""
        pixels = to_gray(img) if self.color == "gray" else to_rgb(img)
        y0, y1, x0, x1 = self.crop_window(pixels.shape)
        pixels = pixels[y0:y1, x0:x1]
        if self.clahe:
            pixels = _clahe(np.ascontiguousarray(pixels))
        height, width = self.shape
        if pixels.shape[:2] == (height, width):
            return np.ascontiguousarray(pixels)
        shrinking = pixels.shape[0] * pixels.shape[1] > height * width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return cv2.resize(pixels, (width, height), interpolation=interpolation)

    def normalize(self, u8: np.ndarray) -> np.ndarray:
        """uint8 `prepared_shape` -> float32 (H, W, channels) in [0, 1]."""
        u8 = np.asarray(u8)
        if u8.dtype != np.uint8:
            raise PreprocessError(f"normalize expects uint8 pixels, got {u8.dtype}")
        if u8.ndim == 3 and u8.shape[2] == 1:
            u8 = u8[:, :, 0]
        if u8.shape != self.prepared_shape:
            raise PreprocessError(
                f"normalize expects shape {self.prepared_shape}, got {u8.shape}: call prepare first"
            )
        scaled = u8.astype(np.float32) / np.float32(255.0)
        return scaled[:, :, np.newaxis] if scaled.ndim == 2 else scaled

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Any decoded image -> model input float32 (H, W, channels)."""
        return self.normalize(self.prepare(img))

    def apply_batch(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """A list of decoded images -> float32 (N, H, W, channels)."""
        prepared = [self.apply(img) for img in images]
        if not prepared:
            return np.zeros((0, *self.input_shape), dtype=np.float32)
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
        sx, sy = (x1 - x0) / self.shape[1], (y1 - y0) / self.shape[0]
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
        """Plain JSON-ready settings, stored in run.json (size: an int, or [height, width])."""
        data = dataclasses.asdict(self)
        data["size"] = self.size if isinstance(self.size, int) else list(self.size)
        return data

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


def parse_size(value: Any) -> tuple[int, int]:
    """(height, width) from 160, "160", "96x384", (96, 384) or [96, 384]; 8-4096 px each."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is not None:
        parts = text.split("x")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise PreprocessError(f"size {value!r}: give one side (160) or height x width (96x384)")
        value = [int(p) for p in parts]
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise PreprocessError(f"size {value!r}: give one side or (height, width)")
        dims = tuple(value)
    else:
        dims = (value, value)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
            raise PreprocessError(f"size must be an integer number of pixels, got {value!r}")
        if not 8 <= d <= 4096:
            raise PreprocessError(f"size must be between 8 and 4096 pixels, got {value!r}")
    return int(dims[0]), int(dims[1])


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Any image read_image returns (HxW, HxWx1, HxWx3, HxWx4) as uint8 HxWx3."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise PreprocessError(f"expected uint8 pixels, got {img.dtype}: decode with read_image")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    raise PreprocessError(f"expected HxW or HxWx(1|3|4) pixels, got shape {img.shape}")


def _clahe(pixels: np.ndarray) -> np.ndarray:
    """CLAHE on a gray image, or on the lightness of an RGB one (hues unchanged)."""
    clahe = cv2.createCLAHE(clipLimit=_CLAHE_CLIP, tileGridSize=_CLAHE_TILES)
    if pixels.ndim == 2:
        return clahe.apply(pixels)
    lab = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

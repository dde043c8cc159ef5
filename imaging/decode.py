"""Decoding and validating images: the one place a file, an upload or bytes become pixels.

Every caller (CLI, app upload, batch review, training) goes through `read_image`, so bad input
gets the same clear message everywhere: the file's name and what is wrong with it.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Pillow's names for the formats behind those extensions (MPO is a multi-picture JPEG).
_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB", "TIFF"}
DEFAULT_MAX_PIXELS = 50_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ImageSource = str | Path | bytes | bytearray | BinaryIO


class ImageError(ValueError):
    """An input that cannot be used as an image; `source` names it, `reason` says why."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.index: int | None = None  # position in a batch, set by load_images

    def __reduce__(self):
        return type(self), (self.source, self.reason)


def read_image(
    source: ImageSource, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode a file, bytes or an upload into uint8 HxW (grayscale) or HxWx3 (RGB), or refuse.

    16-bit data is scaled by its full range (65535 -> 255), alpha is dropped (like OpenCV),
    EXIF orientation is applied. The pixel count is checked from the header before any pixel
    is decoded, so a decompression bomb costs nothing.
    """
    if isinstance(source, str | Path):
        _check_extension(str(source), name or str(source))  # before reading a stray video
    label, data = _read_bytes(source, name)
    _check_extension(label)
    if not data:
        raise ImageError(label, "file is empty (0 bytes)")
    pil = _open(label, data, max_pixels)
    _decode(label, pil, data)
    pil = _apply_orientation(label, pil)
    return _to_uint8(label, pil)


def to_gray(img: np.ndarray) -> np.ndarray:
    """Collapse any image read_image returns (and HxWx1 or HxWx4) to uint8 HxW."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ImageError("array", f"expected uint8 pixels, got {img.dtype}: decode with read_image")
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] == 1:
        return img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_RGBA2GRAY)
    raise ImageError("array", f"expected HxW or HxWx(1|3|4) pixels, got shape {img.shape}")


def _read_bytes(source: ImageSource, name: str | None) -> tuple[str, bytes]:
    if isinstance(source, str | Path):
        path = Path(source)
        label = name or str(source)
        if path.is_dir():
            raise ImageError(label, "is a folder, not an image file")
        try:
            return label, path.read_bytes()
        except FileNotFoundError:
            raise ImageError(label, "file not found") from None
        except OSError as exc:
            raise ImageError(label, f"cannot read file ({exc.strerror or exc})") from None
    if isinstance(source, bytes | bytearray | memoryview):
        return name or "<bytes>", bytes(source)
    if hasattr(source, "read"):
        label = name or str(getattr(source, "name", "") or "<upload>")
        if hasattr(source, "getvalue"):
            return label, bytes(source.getvalue())
        if getattr(source, "seekable", lambda: False)():
            source.seek(0)
        return label, bytes(source.read())
    raise ImageError(
        name or type(source).__name__,
        f"cannot read an image from a {type(source).__name__}: pass a path, bytes or a file",
    )


def _check_extension(filename: str, label: str | None = None) -> None:
    label = label or filename
    suffix = Path(filename).suffix.lower()
    if suffix and suffix not in IMAGE_EXTENSIONS:
        raise ImageError(
            label, f"unsupported file type {suffix!r} (accepted: {' '.join(IMAGE_EXTENSIONS)})"
        )


_SIGNATURES = {
    _PNG_SIGNATURE: "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _sniff(data: bytes) -> str | None:
    """The format a file's magic bytes announce (BMP's two-byte 'BM' is too weak to trust)."""
    return next((kind for magic, kind in _SIGNATURES.items() if data.startswith(magic)), None)


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height straight from a PNG or BMP header, for files Pillow refuses to open."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    return None


def _too_many(label: str, width: int, height: int, max_pixels: int) -> ImageError:
    return ImageError(
        label,
        f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
        f"{max_pixels:,} (possible decompression bomb); resize it or raise max_pixels",
    )


def _open(label: str, data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header only and check format, size and pixel count."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        size = _header_size(data)
        if size:
            raise _too_many(label, *size, max_pixels) from None
        raise ImageError(label, f"too many pixels, possible decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        size = _header_size(data)
        if size and 0 in size:
            raise ImageError(label, f"image has zero size ({size[0]}x{size[1]})") from None
        kind = _sniff(data)
        if kind:
            # PIL names its in-memory buffer ("<_io.BytesIO object at 0x...>"): the same file
            # must give the same message in every process.
            reason = re.sub(r" ?<[^>]* at 0x[0-9a-f]+>", "", str(exc))
            raise ImageError(
                label, f"file is truncated or its {kind} header is corrupt ({reason})"
            ) from None
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError(
                label, "not an image (no PNG, JPEG, BMP or TIFF header found)"
            ) from None
        raise ImageError(label, f"corrupt image header ({exc})") from None
    if pil.format not in _FORMATS:
        raise ImageError(
            label, f"unsupported image format {pil.format} (accepted: PNG, JPEG, BMP, TIFF)"
        )
    width, height = pil.size
    if width <= 0 or height <= 0:
        raise ImageError(label, f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise _too_many(label, width, height, max_pixels)
    return pil


def _decode(label: str, pil: Image.Image, data: bytes) -> None:
    """Decode the pixels, refusing truncated data (Pillow fills the gap only when told to)."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageError(
            label,
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set by some library; truncated images "
            "cannot be detected, unset it",
        )
    try:
        pil.load()
        if pil.format == "PNG":
            # A PNG cut after its pixel data still decodes; its chunk chain does not check out.
            with Image.open(io.BytesIO(data)) as again:
                again.verify()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as exc:
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError) or "EOF" in text:
            raise ImageError(label, f"file is truncated ({text})") from None
        raise ImageError(label, f"corrupt image data ({text})") from None


def _apply_orientation(label: str, pil: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(pil)
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", label, exc)
        return pil


def _to_uint8(label: str, pil: Image.Image) -> np.ndarray:
    mode = pil.mode
    if mode in ("1", "L", "LA", "La"):
        return np.ascontiguousarray(np.asarray(pil.convert("L"), dtype=np.uint8))
    if mode.startswith("I"):
        return _scale_16bit(np.asarray(pil))
    if mode == "F":
        values = np.asarray(pil, dtype=np.float32)
        if np.nanmax(values) <= 1.0:
            values = values * 255.0
        return np.nan_to_num(values).clip(0, 255).round().astype(np.uint8)
    try:
        rgb = pil.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageError(label, f"cannot convert image mode {mode} to RGB ({exc})") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map the full 16-bit range onto 8 bits, so the same raw value always gives the same byte."""
    values = values.astype(np.float64).clip(0, 65535)
    return np.round(values / 257.0).astype(np.uint8)

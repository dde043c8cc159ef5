"""Decoding and validating images: the one place a file, an upload or bytes become pixels.

Every caller (CLI, app upload, batch review, training) goes through `read_image`, so bad input
gets the same clear message everywhere: the file's name and what is wrong with it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass, field
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
# Largest image file read from disk: reads are bounded, so a device or a huge file never hangs.
MAX_FILE_BYTES = 512 * 1024 * 1024
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


@dataclass
class DecodedImage:
    """Pixels as `read_image` returns them, plus what the caller should flag about them."""

    pixels: np.ndarray
    warnings: list[str] = field(default_factory=list)


def read_image(
    source: ImageSource, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode a file, bytes or an upload into uint8 HxW (grayscale) or HxWx3 (RGB), or refuse.

    See `decode_image`; its warnings are logged here. Callers that write results (CSV rows,
    the app) use `decode_image` and show the warnings next to the result.
    """
    decoded = decode_image(source, name, max_pixels)
    label = name or (str(source) if isinstance(source, str | Path) else "<image>")
    for text in decoded.warnings:
        log.warning("%s: %s", label, text)
    return decoded.pixels


def decode_image(
    source: ImageSource, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode like `read_image` and keep the warnings (bit depth guessed, page 1 of many).

    16-bit data is scaled by its real bit depth: the PNG sBIT chunk when present, else the
    smallest of 10/12/14/16 bits that holds the observed maximum (with a warning, since a dark
    16-bit image looks the same). Multi-page and animated files give page 1 with a warning;
    NaN or infinite float pixels are refused. Alpha is dropped (like OpenCV), EXIF orientation
    is applied. Paths must be regular files (a FIFO or device is refused before reading) and
    reads are bounded; the pixel count is checked from the header before decoding.
    """
    if isinstance(source, str | Path):
        _check_extension(str(source), name or str(source))  # before reading a stray video
    label, data = _read_bytes(source, name)
    _check_extension(label)
    if not data:
        raise ImageError(label, "file is empty (0 bytes)")
    pil = _open(label, data, max_pixels)
    _decode(label, pil, data)
    notes = _page_warning(pil)
    pil = _apply_orientation(label, pil)
    pixels = _to_uint8(label, pil, data, notes)
    return DecodedImage(pixels, notes)


def image_size(source: ImageSource, name: str | None = None) -> tuple[int, int]:
    """(width, height) from the header alone, for checks that must not decode every pixel."""
    label, data = _read_bytes(source, name)
    if not data:
        raise ImageError(label, "file is empty (0 bytes)")
    pil = _open(label, data, DEFAULT_MAX_PIXELS)
    return pil.size


def read_file_bytes(path: str | Path, label: str | None = None) -> bytes:
    """A regular file's bytes, at most MAX_FILE_BYTES; FIFOs, devices and folders are refused.

    The check runs on the opened descriptor, so a symlink to /dev/zero or a named pipe is
    refused without blocking or reading forever.
    """
    label = label or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageError(label, "file not found") from None
    except IsADirectoryError:
        raise ImageError(label, "is a folder, not an image file") from None
    except OSError as exc:
        raise ImageError(label, f"cannot read file ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(info.st_mode):
        problem = "is a folder, not an image file"
    elif not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file (a pipe, socket or device); copy the image to a file"
    elif info.st_size > MAX_FILE_BYTES:
        problem = f"file is {info.st_size:,} bytes, over the {MAX_FILE_BYTES:,} byte limit"
    if problem:
        os.close(fd)
        raise ImageError(label, problem)
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ImageError(label, f"cannot read file ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(label, f"file grew past the {MAX_FILE_BYTES:,} byte limit while read")
    return data


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
        label = name or str(source)
        return label, read_file_bytes(source, label)
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


def _page_warning(pil: Image.Image) -> list[str]:
    """Page 1 of a multi-page TIFF or an animated PNG is used; say so (MPO extras are previews)."""
    frames = getattr(pil, "n_frames", 1)
    if frames > 1 and pil.format != "MPO":
        return [f"file holds {frames} pages/frames: only page 1 was used"]
    return []


def _to_uint8(label: str, pil: Image.Image, data: bytes, notes: list[str]) -> np.ndarray:
    mode = pil.mode
    if mode in ("1", "L", "LA", "La"):
        return np.ascontiguousarray(np.asarray(pil.convert("L"), dtype=np.uint8))
    if mode.startswith("I"):
        values = np.asarray(pil)
        if mode in ("I", "I;32") and values.size and int(values.max()) > 65535:
            raise ImageError(label, "32-bit integer pixels are not supported; save as 8 or 16 bit")
        return _scale_16bit(values, _significant_bits(data), notes)
    if mode == "F":
        values = np.asarray(pil, dtype=np.float32)
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise ImageError(
                label, f"{bad:,} pixels are NaN or infinite; fix the export (no missing values)"
            )
        if values.size and np.max(values) <= 1.0:
            values = values * 255.0
        return values.clip(0, 255).round().astype(np.uint8)
    if _png_depth(data) == 16:
        return _png16_colour(label, data, notes)
    try:
        rgb = pil.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageError(label, f"cannot convert image mode {mode} to RGB ({exc})") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The PNG chunks before the pixel data (IHDR, sBIT, ...), by type."""
    chunks, offset = {}, len(_PNG_SIGNATURE)
    while data.startswith(_PNG_SIGNATURE) and offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            break
        chunks[kind] = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return chunks


def _png_depth(data: bytes) -> int | None:
    header = _png_chunks(data).get(b"IHDR", b"")
    return header[8] if len(header) >= 9 else None


def _significant_bits(data: bytes) -> int | None:
    """The bit depth a PNG's sBIT chunk declares (the largest over its channels), if any."""
    sbit = _png_chunks(data).get(b"sBIT")
    if not sbit:
        return None
    bits = max(sbit)
    return bits if 1 <= bits <= 16 else None


def _scale_16bit(values: np.ndarray, bits: int | None, notes: list[str]) -> np.ndarray:
    """Map the real bit depth onto 8 bits: sBIT when declared, else the observed maximum.

    Industrial cameras write 10- or 12-bit data into 16-bit files; scaling those by 65535
    would turn every part nearly black and every defect invisible.
    """
    values = values.astype(np.float64).clip(0, 65535)
    if bits is None:
        peak = float(values.max()) if values.size else 0.0
        bits = next(b for b in (10, 12, 14, 16) if peak < 2**b)
        if bits < 16:
            notes.append(
                f"16-bit file with no sBIT chunk and maximum {peak:.0f}: scaled as {bits}-bit "
                "data; add an sBIT chunk if that is wrong"
            )
    top = float(2**bits - 1)
    return np.round(values.clip(0, top) * (255.0 / top)).astype(np.uint8)


def _png16_colour(label: str, data: bytes, notes: list[str]) -> np.ndarray:
    """16-bit RGB(A) PNG through OpenCV (Pillow would keep only the high bytes), scaled alike."""
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3:
        raise ImageError(label, "corrupt 16-bit colour PNG data")
    rgb = cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2RGB)
    return _scale_16bit(rgb, _significant_bits(data), notes)

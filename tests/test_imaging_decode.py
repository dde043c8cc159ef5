"""read_image: every accepted kind of image decodes, every bad input is refused by name."""

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imaging import ImageError, read_image, to_gray


def gradient(height: int = 24, width: int = 32) -> np.ndarray:
    return (np.add.outer(np.arange(height) * 3, np.arange(width) * 5) % 256).astype(np.uint8)


def encode(array: np.ndarray, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **kw)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds no pixel data: cheap to make."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def refusal(source, **kw) -> ImageError:
    with pytest.raises(ImageError) as info:
        read_image(source, **kw)
    return info.value


# --- accepted inputs ------------------------------------------------------------------------


def test_grayscale_png_round_trips_exactly(tmp_path):
    path = tmp_path / "gray.png"
    path.write_bytes(encode(gradient(), "PNG"))
    img = read_image(path)
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img, gradient())


def test_rgb_png_stays_rgb(tmp_path):
    rgb = np.stack([gradient(), 255 - gradient(), np.full_like(gradient(), 7)], axis=-1)
    path = tmp_path / "rgb.png"
    path.write_bytes(encode(rgb, "PNG"))
    np.testing.assert_array_equal(read_image(path), rgb)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    path = tmp_path / "rgba.png"
    path.write_bytes(encode(rgba, "PNG"))
    img = read_image(path)
    assert img.shape == (10, 12, 3)
    assert (img[..., 0] == 200).all()


def test_16bit_png_is_scaled_by_full_range(tmp_path):
    raw = np.array([[0, 257, 65535], [32896, 514, 1000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(encode(raw, "PNG"))
    img = read_image(path)
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img, [[0, 1, 255], [128, 2, 4]])


def test_exif_orientation_is_applied(tmp_path):
    upright = np.zeros((20, 40), np.uint8)
    upright[:, :10] = 255  # bright left edge
    image = Image.fromarray(upright)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    image.save(path, "JPEG", exif=exif, quality=95)
    img = read_image(path)
    assert img.shape == (40, 20)
    assert img[:10].mean() > 200 and img[-10:].mean() < 50  # left edge is now the top


@pytest.mark.parametrize("suffix, fmt", [(".tif", "TIFF"), (".tiff", "TIFF"), (".bmp", "BMP")])
def test_tiff_and_bmp_decode(tmp_path, suffix, fmt):
    path = tmp_path / f"part{suffix}"
    path.write_bytes(encode(gradient(), fmt))
    np.testing.assert_array_equal(read_image(path), gradient())


def test_jpeg_extension_variants_decode(tmp_path):
    for suffix in (".jpg", ".jpeg", ".JPG"):
        path = tmp_path / f"part{suffix}"
        path.write_bytes(encode(gradient(), "JPEG", quality=95))
        assert read_image(path).shape == (24, 32)


def test_bytes_and_file_objects_decode():
    data = encode(gradient(), "PNG")
    np.testing.assert_array_equal(read_image(data, name="upload.png"), gradient())
    buffer = io.BytesIO(data)
    buffer.read()  # an upload that was already consumed once
    np.testing.assert_array_equal(read_image(buffer), gradient())


def test_to_gray_collapses_rgb_and_keeps_gray():
    rgb = np.stack([gradient()] * 3, axis=-1)
    np.testing.assert_array_equal(to_gray(rgb), gradient())
    np.testing.assert_array_equal(to_gray(gradient()), gradient())


# --- refused inputs: each names the file and the reason -------------------------------------


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    error = refusal(path)
    assert error.source == str(path)
    assert str(error) == f"{path}: file is empty (0 bytes)"


def test_truncated_png_is_refused(tmp_path):
    data = encode(gradient(64, 64), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    error = refusal(path)
    assert str(path) in str(error) and "truncated" in error.reason


def test_png_cut_after_its_pixels_is_refused(tmp_path):
    data = encode(gradient(64, 64), "PNG")
    path = tmp_path / "no_end.png"
    path.write_bytes(data[:-12])  # the IEND chunk is gone, the pixels are all there
    assert "truncated" in refusal(path).reason


def test_truncated_jpeg_is_refused(tmp_path):
    data = encode(gradient(64, 64), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    error = refusal(path)
    assert str(path) in str(error) and "truncated" in error.reason


def test_jpeg_missing_only_its_end_marker_is_refused(tmp_path):
    path = tmp_path / "no_eoi.jpg"
    path.write_bytes(encode(gradient(64, 64), "JPEG")[:-2])
    assert "truncated" in refusal(path).reason


def test_png_cut_inside_its_header_is_refused(tmp_path):
    path = tmp_path / "stub.png"
    path.write_bytes(encode(gradient(), "PNG")[:40])
    assert refusal(path).reason.startswith("file is truncated or its PNG header is corrupt")


def test_a_corrupt_header_gives_the_same_message_in_every_process():
    stub = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
    reason = refusal(stub).reason
    assert "0x" not in reason and reason == refusal(bytes(stub)).reason


def test_text_renamed_to_png_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("inspection notes, not pixels\n")
    error = refusal(path)
    assert str(path) in str(error) and error.reason.startswith("not an image")


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    # The header claims 100 M pixels but no pixel data follows: decoding would fail as truncated,
    # so a pixel-count message proves the check ran before any decoding.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10_000, 10_000))
    error = refusal(path)
    assert "100,000,000 pixels" in error.reason and "decompression bomb" in error.reason


def test_huge_bomb_beyond_pillows_own_limit_gets_the_same_message(tmp_path):
    path = tmp_path / "bigger_bomb.png"
    path.write_bytes(png_header_only(40_000, 40_000))
    assert "1,600,000,000 pixels" in refusal(path).reason


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(encode(gradient(), "PNG"))
    assert "over the limit of 100" in refusal(path, max_pixels=100).reason


def test_zero_size_image_is_refused(tmp_path):
    path = tmp_path / "flat.png"
    path.write_bytes(png_header_only(0, 16))
    assert refusal(path).reason == "image has zero size (0x16)"


def test_unsupported_extension_is_refused(tmp_path):
    path = tmp_path / "anim.gif"
    path.write_bytes(encode(gradient(), "GIF"))
    assert "unsupported file type '.gif'" in refusal(path).reason


def test_unsupported_format_behind_an_accepted_extension_is_refused(tmp_path):
    path = tmp_path / "really_a_gif.png"
    path.write_bytes(encode(gradient(), "GIF"))
    assert "unsupported image format GIF" in refusal(path).reason


def test_missing_file_and_folder_are_refused(tmp_path):
    assert refusal(tmp_path / "gone.png").reason == "file not found"
    assert "is a folder" in refusal(tmp_path).reason


def test_uploads_are_named_in_messages():
    assert str(refusal(b"", name="scan_07.png")) == "scan_07.png: file is empty (0 bytes)"
    upload = io.BytesIO(b"GIF? no, plain text")
    upload.name = "batch/scan_08.jpg"
    assert str(refusal(upload)).startswith("batch/scan_08.jpg: not an image")


def test_image_error_survives_pickling_for_worker_processes():
    error = pickle.loads(pickle.dumps(ImageError("a.png", "file is empty (0 bytes)")))
    assert (error.source, error.reason, str(error)) == (
        "a.png", "file is empty (0 bytes)", "a.png: file is empty (0 bytes)",
    )  # fmt: skip

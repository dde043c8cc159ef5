"""Safe intake of uploads: every bad zip entry gets a message and the good ones still arrive."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from imaging.archive import iter_upload_files, read_zip


def png_bytes(seed: int = 0, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


GOOD = {"parts/good_1.png": png_bytes(1), "parts/good_2.png": png_bytes(2)}


def names(files):
    return [name for name, _ in files]


def test_good_zip_yields_every_image_with_its_bytes():
    files, problems = read_zip(make_zip(GOOD))
    assert dict(files) == GOOD
    assert problems == []


@pytest.mark.parametrize(
    ("bad_name", "reason"),
    [
        ("../../evil.png", "path traversal"),
        ("parts/../../evil.png", "path traversal"),
        ("/etc/evil.png", "absolute path"),
        ("C:/Windows/evil.png", "absolute path"),
    ],
)
def test_unsafe_names_are_refused_and_good_entries_still_come(bad_name, reason):
    files, problems = read_zip(make_zip({**GOOD, bad_name: png_bytes(3)}), name="shift.zip")
    assert names(files) == list(GOOD)
    assert len(problems) == 1
    assert bad_name in problems[0] and reason in problems[0] and "shift.zip" in problems[0]


def test_high_compression_ratio_is_refused_as_a_bomb():
    bomb = bytes(20 * 1024 * 1024)
    files, problems = read_zip(make_zip({**GOOD, "bomb.png": bomb}), max_ratio=100)
    assert names(files) == list(GOOD)
    assert len(problems) == 1
    assert "bomb.png" in problems[0] and "max_ratio" in problems[0]


def test_too_many_files_keeps_the_first_and_reports_the_rest_once():
    entries = {f"img_{i}.png": png_bytes(i) for i in range(5)}
    files, problems = read_zip(make_zip(entries), max_files=3)
    assert names(files) == ["img_0.png", "img_1.png", "img_2.png"]
    assert len(problems) == 1
    assert "img_3.png" in problems[0] and "1 later" in problems[0] and "max_files" in problems[0]


def test_total_size_limit_refuses_entries_that_would_exceed_it():
    entries = {"a.png": png_bytes(1, size=32), "b.png": png_bytes(2, size=32)}
    limit = len(entries["a.png"]) + len(entries["b.png"]) // 2
    files, problems = read_zip(make_zip(entries), max_total_bytes=limit)
    assert names(files) == ["a.png"]
    assert len(problems) == 1
    assert "b.png" in problems[0] and "max_total_bytes" in problems[0]


def test_nested_zip_is_skipped_with_a_message():
    files, problems = read_zip(make_zip({**GOOD, "more/inner.zip": make_zip(GOOD)}))
    assert names(files) == list(GOOD)
    assert len(problems) == 1
    assert "more/inner.zip" in problems[0] and "nested archive" in problems[0]


def test_non_image_entries_are_reported():
    files, problems = read_zip(make_zip({**GOOD, "notes.txt": b"hello", "README": b"x"}))
    assert names(files) == list(GOOD)
    assert len(problems) == 2
    assert "notes.txt" in problems[0] and "not an image type ('.txt')" in problems[0]
    assert "README" in problems[1] and "no extension" in problems[1]


def test_hidden_and_system_files_are_counted_in_one_message():
    hidden = {"__MACOSX/parts/._good_1.png": b"x", ".DS_Store": b"x", "parts/.thumb.png": b"x"}
    files, problems = read_zip(make_zip({**GOOD, **hidden}))
    assert names(files) == list(GOOD)
    assert len(problems) == 1
    assert "2 other hidden" in problems[0]


def test_directories_are_skipped_quietly():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.mkdir("parts")
        zf.writestr("parts/good_1.png", GOOD["parts/good_1.png"])
    files, problems = read_zip(buffer.getvalue())
    assert names(files) == ["parts/good_1.png"] and problems == []


def test_entry_larger_than_its_declared_size_is_refused():
    payload = png_bytes(7, size=64)
    data = bytearray(make_zip({"liar.png": payload, **GOOD}))
    small = (100).to_bytes(4, "little")
    # Rewrite the uncompressed size in the local and central headers of the first entry.
    local = data.index(b"PK\x03\x04")
    data[local + 22 : local + 26] = small
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = small
    files, problems = read_zip(bytes(data))
    assert names(files) == list(GOOD)
    assert len(problems) == 1 and "liar.png" in problems[0] and "corrupt" in problems[0]


def test_a_file_that_is_not_a_zip_is_one_problem():
    files, problems = read_zip(b"this is not a zip", name="broken.zip")
    assert files == []
    assert (
        len(problems) == 1 and "broken.zip" in problems[0] and "not a readable zip" in problems[0]
    )


def test_read_zip_accepts_a_path(tmp_path):
    path = tmp_path / "batch.zip"
    path.write_bytes(make_zip(GOOD))
    files, problems = read_zip(path)
    assert dict(files) == GOOD and problems == []


def test_upload_mixes_plain_files_and_zips_in_order():
    uploads = [
        ("loose.png", png_bytes(10)),
        ("batch.zip", make_zip({**GOOD, "notes.txt": b"x"})),
        ("report.pdf", b"%PDF"),
    ]
    entries = list(iter_upload_files(uploads))
    assert [e.name for e in entries if e.ok] == ["loose.png", *GOOD]
    problems = [e.problem for e in entries if not e.ok]
    assert len(problems) == 2
    assert "batch.zip: notes.txt" in problems[0] and "report.pdf" in problems[1]


def test_upload_limits_apply_across_all_files():
    uploads = [("a.png", png_bytes(1)), ("batch.zip", make_zip(GOOD)), ("b.png", png_bytes(2))]
    entries = list(iter_upload_files(uploads, max_files=2))
    assert [e.name for e in entries if e.ok] == ["a.png", "parts/good_1.png"]
    problems = [e.problem for e in entries if not e.ok]
    assert len(problems) == 1 and "parts/good_2.png" in problems[0] and "1 later" in problems[0]

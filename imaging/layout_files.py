"""Walking a data set's folders: subfolders, the image files in a folder, paths relative to the
data set's root and image dimensions read from the headers (no pixels decoded)."""

from __future__ import annotations

import logging
from pathlib import Path

from imaging.decode import IMAGE_EXTENSIONS
from imaging.layout_terms import DatasetError, listing

log = logging.getLogger(__name__)


def relative(path: str, root: Path) -> str:
    """`path` relative to `root` (POSIX separators), or the whole path when outside it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def dimensions(path: str) -> tuple[int, int]:
    """(width, height) from the image header, (-1, -1) when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return -1, -1


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def images_in(folder: Path, root: Path) -> list[Path]:
    """Image files directly in `folder`; other files are reported, not silently dropped."""
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in files if _is_image(p)]
    others = [p.name for p in files if p.is_file() and p not in images]
    if others:
        log.warning(
            "%s: ignoring %d non-image files (%s); accepted: %s",
            relative(str(folder), root),
            len(others),
            listing(others),
            " ".join(IMAGE_EXTENSIONS),
        )
    if not images:
        raise DatasetError(
            f"{relative(str(folder), root)}/ holds no images ({' '.join(IMAGE_EXTENSIONS)})"
        )
    return images


def subdirs(folder: Path) -> list[Path]:
    """Visible subfolders of `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

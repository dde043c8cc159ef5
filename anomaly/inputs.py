"""Turning `--images DIR|FILES` arguments into a file list (folders are searched recursively)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class InputError(ValueError):
    """An `--images` argument names nothing usable."""


def expand_image_args(args: Sequence[str | Path]) -> list[Path]:
    """Files as given (any suffix: a bad one is reported when read), folders as their images."""
    files: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise InputError(
                    f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                    "point --images at the folder with the parts"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder; check the --images argument")
    return files

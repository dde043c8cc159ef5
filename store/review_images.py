"""The review log's image files: content-addressed copies under the log's image folder
(`<sha[:2]>/<sha>.<ext>`, written once, atomically), and the size of a stored image."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_EXT_RE = re.compile(r"^\.[a-z0-9]{1,5}$")


def store_bytes(images_dir: Path, sha: str, name: str, data: bytes) -> str:
    """Write `data` once under images_dir/<sha[:2]>/<sha>.<ext>; returns the relative path."""
    ext = Path(name).suffix.lower()
    relative = f"{sha[:2]}/{sha}{ext if _EXT_RE.match(ext) else '.bin'}"
    target = images_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    return relative


def image_size(row: Any) -> tuple[int | None, int | None]:
    """(width, height) of an item row: recorded, else read from its stored copy (None if not)."""
    if row.width is not None and row.height is not None:
        return int(row.width), int(row.height)
    try:
        from imaging import read_image

        shape = read_image(row.image_path, name=row.file_name).shape
    except (ImportError, ValueError, OSError) as exc:
        log.warning("%s: image size unknown for COCO export (%s)", row.file_name, exc)
        return None, None
    return int(shape[1]), int(shape[0])

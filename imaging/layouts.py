"""Data-set layouts on disk (class folders, MVTec AD, CSV manifest) -> one `DatasetSpec`.

Discovery only lists files and checks the structure (classes, splits, masks, manifest rows); it
never decodes pixels, so it is fast on thousands of images. Bad pixels are `read_image`'s job.

`discover` picks the layout; each layout lives in its own module (`layout_csv`, `layout_mvtec`,
`layout_class_folders`), the spec and its shared checks in `dataset_spec`, splitting in `splits`.
"""

from __future__ import annotations

from pathlib import Path

from imaging.dataset_spec import DatasetSpec
from imaging.layout_class_folders import discover_class_folders
from imaging.layout_csv import discover_csv
from imaging.layout_mvtec import discover_mvtec, looks_like_mvtec
from imaging.layout_terms import (
    ANNOTATIONS_NAME,
    BOX_COLUMNS,
    BOX_COORDS,
    ITEM_COLUMNS,
    MANIFEST_NAME,
    SPLITS,
    DatasetError,
    is_normal_class,
)

__all__ = [
    "ANNOTATIONS_NAME",
    "BOX_COLUMNS",
    "BOX_COORDS",
    "ITEM_COLUMNS",
    "MANIFEST_NAME",
    "SPLITS",
    "DatasetError",
    "DatasetSpec",
    "discover",
    "is_normal_class",
]


def discover(root: str | Path) -> DatasetSpec:
    """Read a data set's layout: a CSV manifest, an MVTec AD tree or class folders."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(f"{root}: expected a folder or a .csv manifest")
        return discover_csv(root)
    root = root.resolve()
    if (root / MANIFEST_NAME).is_file():
        return discover_csv(root / MANIFEST_NAME)
    if looks_like_mvtec(root):
        return discover_mvtec(root)
    return discover_class_folders(root)

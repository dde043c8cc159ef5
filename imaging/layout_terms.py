"""The words every data-set layout shares: splits and their folder aliases, the item and box
columns, the manifest and annotation file names, the normal class and `DatasetError`."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
ITEM_COLUMNS = ("path", "label", "split", "is_defect", "defect_type", "mask_path")
BOX_COLUMNS = ("path", "x_min", "y_min", "x_max", "y_max", "defect_type")
# A box in annotations.csv and manifests: pixel corners, x_min < x_max and y_min < y_max.
BOX_COORDS = ("x_min", "y_min", "x_max", "y_max")
MANIFEST_NAME = "manifest.csv"
ANNOTATIONS_NAME = "annotations.csv"
_SHOWN = 5


class DatasetError(ValueError):
    """A data set whose layout, classes, splits, masks or manifest rows cannot be used."""


def is_normal_class(name: str) -> bool:
    """Folder/label names that mean 'no defect': ok*, good, normal (any case)."""
    low = name.lower()
    return low.startswith("ok") or low in ("good", "normal")


def listing(values: Sequence[str], limit: int = _SHOWN) -> str:
    """The first `limit` values for an error message, with how many more were left out."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" ... and {len(values) - limit} more" if len(values) > limit else "")


def given(value: object) -> bool:
    """A non-empty string (pandas turns None into NaN in string columns)."""
    return isinstance(value, str) and value != ""


def empty_boxes() -> pd.DataFrame:
    """A boxes table with the `BOX_COLUMNS` and no rows."""
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("path", "defect_type") else float) for c in BOX_COLUMNS}
    )

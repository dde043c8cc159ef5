"""The CSV manifest layout (path,label[,split][,defect_type][,mask_path][,box columns]) and the
CSV readers the class-folder layout's annotations.csv shares: rows, boxes and mask checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imaging.dataset_spec import DatasetSpec, build_spec
from imaging.decode import IMAGE_EXTENSIONS
from imaging.layout_files import relative
from imaging.layout_terms import (
    BOX_COORDS,
    SPLIT_ALIASES,
    SPLITS,
    DatasetError,
    empty_boxes,
    given,
    listing,
)


def read_csv(path: Path) -> pd.DataFrame:
    """Every cell as a string (empty, never NaN), column names stripped and lower-case."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    return table


def _rows(frame: pd.DataFrame, mask: pd.Series, first_row: int) -> str:
    """CSV line numbers (header is line 1) of the rows where mask holds."""
    return listing([str(i + first_row) for i in np.flatnonzero(mask.to_numpy())], limit=8)


def boxes_from(table: pd.DataFrame, source: Path, first_row: int) -> pd.DataFrame:
    """The rows' boxes (all four BOX_COORDS filled), checked; rows without a box are skipped."""
    present = [c for c in BOX_COORDS if c in table]
    if not present:
        return empty_boxes()
    if len(present) != 4:
        raise DatasetError(
            f"{source}: box columns need all of {', '.join(BOX_COORDS)}; found {', '.join(present)}"
        )
    coords = table[list(BOX_COORDS)].replace("", np.nan)
    filled = coords.notna()
    partial = filled.any(axis=1) & ~filled.all(axis=1)
    if partial.any():
        raise DatasetError(
            f"{source}: rows {_rows(table, partial, first_row)} have an incomplete box"
        )
    numbers = coords.apply(pd.to_numeric, errors="coerce")
    bad = filled.all(axis=1) & (
        numbers.isna().any(axis=1)
        | (numbers["x_min"] >= numbers["x_max"])
        | (numbers["y_min"] >= numbers["y_max"])
        | (numbers[["x_min", "y_min"]] < 0).any(axis=1)
    )
    if bad.any():
        raise DatasetError(
            f"{source}: rows {_rows(table, bad, first_row)} have invalid boxes (need numbers "
            "with 0 <= x_min < x_max and 0 <= y_min < y_max)"
        )
    has_box = filled.all(axis=1)
    boxes = numbers[has_box].astype(float)
    boxes.insert(0, "path", table.loc[has_box, "path"])
    boxes["defect_type"] = table.loc[has_box, "defect_type"] if "defect_type" in table else ""
    return boxes.reset_index(drop=True)


def check_masks(items: pd.DataFrame, root: Path, source: Path) -> None:
    """Refuse items whose mask_path names a file that is not there."""
    missing = [relative(m, root) for m in items["mask_path"] if given(m) and not Path(m).is_file()]
    if missing:
        raise DatasetError(f"{source}: {len(missing)} mask files are missing: {listing(missing)}")


def discover_csv(csv_path: Path) -> DatasetSpec:
    """A manifest's rows -> DatasetSpec; paths are relative to the manifest's folder."""
    csv_path = csv_path.resolve()
    base = csv_path.parent
    table = read_csv(csv_path)
    missing_cols = [c for c in ("path", "label") if c not in table]
    if missing_cols:
        raise DatasetError(
            f"{csv_path}: missing column(s) {', '.join(missing_cols)} (found: "
            f"{', '.join(table.columns)}); a manifest needs path,label[,split]"
        )
    if table.empty:
        raise DatasetError(f"{csv_path}: the manifest has no rows")
    first_row = 2
    table["path"] = table["path"].str.strip()
    table["label"] = table["label"].str.strip()
    for column, what in (("path", "an empty path"), ("label", "an empty label")):
        empty = table[column] == ""
        if empty.any():
            raise DatasetError(f"{csv_path}: rows {_rows(table, empty, first_row)} have {what}")
    table["path"] = [str((base / p).resolve()) for p in table["path"]]
    bad_ext = ~table["path"].map(lambda p: Path(p).suffix.lower() in IMAGE_EXTENSIONS)
    if bad_ext.any():
        raise DatasetError(
            f"{csv_path}: rows {_rows(table, bad_ext, first_row)} name files that are not "
            f"images ({' '.join(IMAGE_EXTENSIONS)})"
        )
    exists = {p: Path(p).is_file() for p in table["path"].unique()}
    missing = ~table["path"].map(exists)
    if missing.any():
        names = listing([relative(p, base) for p in table.loc[missing, "path"].unique()])
        raise DatasetError(
            f"{csv_path}: rows {_rows(table, missing, first_row)} name missing files ({names})"
        )
    if "split" in table:
        table["split"] = table["split"].str.strip().str.lower()
        mapped = table["split"].map(lambda s: SPLIT_ALIASES.get(s, "train" if s == "" else None))
        unknown = mapped.isna()
        if unknown.any():
            raise DatasetError(
                f"{csv_path}: rows {_rows(table, unknown, first_row)} have unknown split "
                f"names {listing(sorted(set(table.loc[unknown, 'split'])))}; use "
                f"{', '.join(SPLITS)}"
            )
        table["split"] = mapped
    else:
        table["split"] = "train"
    conflicts = table.groupby("path")[["label", "split"]].nunique().max(axis=1) > 1
    if conflicts.any():
        clash = table["path"].isin(set(conflicts[conflicts].index))
        raise DatasetError(
            f"{csv_path}: rows {_rows(table, clash, first_row)} give the same image different "
            "labels or splits"
        )
    boxes = boxes_from(table, csv_path, first_row)
    columns = ["path", "label", "split"] + [c for c in ("defect_type", "mask_path") if c in table]
    items = table[columns].drop_duplicates("path").reset_index(drop=True)
    if "mask_path" in items:
        items["mask_path"] = [str((base / m).resolve()) if m else None for m in items["mask_path"]]
        check_masks(items, base, csv_path)
    return build_spec(base, "csv", items, boxes)

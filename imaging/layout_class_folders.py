"""The class-folder layout: train/<class>/*, val/<class>/*, test/<class>/* (folder aliases such
as training/ or validation/ allowed), with the synthetic generator's annotations.csv joined in
when present (defect types, masks, boxes)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from imaging.dataset_spec import DatasetSpec, build_spec
from imaging.layout_csv import boxes_from, check_masks, read_csv
from imaging.layout_files import images_in, relative, subdirs
from imaging.layout_terms import (
    ANNOTATIONS_NAME,
    MANIFEST_NAME,
    SPLIT_ALIASES,
    DatasetError,
    listing,
)

log = logging.getLogger(__name__)


def _split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for sub in subdirs(root):
        split = SPLIT_ALIASES.get(sub.name.lower())
        if split is None:
            continue
        if split in found:
            raise DatasetError(
                f"{root}: both {found[split].name}/ and {sub.name}/ look like the {split} split; "
                "keep one"
            )
        found[split] = sub
    return found


def discover_class_folders(root: Path) -> DatasetSpec:
    """One item per image in <split>/<class>/; the class folder's name is the label."""
    splits = _split_folders(root)
    if not splits:
        subdir_names = [p.name for p in subdirs(root)]
        if not subdir_names:
            raise DatasetError(
                f"{root}: no data set found; expected train/<class>/ and test/<class>/ folders, "
                f"an MVTec tree or a {MANIFEST_NAME}"
            )
        raise DatasetError(
            f"{root}: no train/, val/ or test/ folder (found: {listing(subdir_names)}); expected "
            "train/<class>/* and test/<class>/*"
        )
    ignored = [p.name for p in subdirs(root) if p not in splits.values()]
    if ignored:
        log.info("%s: ignoring non-split folders %s", root, ", ".join(ignored))
    rows = []
    for split, folder in splits.items():
        classes = subdirs(folder)
        if not classes:
            raise DatasetError(
                f"{folder.name}/ holds no class folders (expected {folder.name}/<class>/*)"
            )
        for class_dir in classes:
            for image in images_in(class_dir, root):
                rows.append({"path": str(image), "label": class_dir.name, "split": split})
    items = pd.DataFrame(rows)
    boxes = None
    if (root / ANNOTATIONS_NAME).is_file():
        items, boxes = _join_annotations(root, items)
    return build_spec(root, "class_folders", items, boxes)


def _join_annotations(root: Path, items: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Masks, defect types and boxes from the synthetic generator's annotations.csv."""
    source = root / ANNOTATIONS_NAME
    table = read_csv(source)
    if "path" not in table:
        raise DatasetError(f"{source}: no 'path' column (columns: {', '.join(table.columns)})")
    table["path"] = [str((root / p).resolve()) if p else "" for p in table["path"]]
    known = set(items["path"])
    stray = table.loc[~table["path"].isin(known), "path"]
    if len(stray):
        log.warning(
            "%s: %d rows name images not in the class folders (%s)",
            source,
            len(stray),
            listing([relative(p, root) for p in stray.unique()]),
        )
    boxes = boxes_from(table, source, first_row=2)
    boxes = boxes[boxes["path"].isin(known)]
    table = table[table["path"].isin(known)]
    items = items.copy()
    if "defect_type" in table:
        types = table[table["defect_type"] != ""].groupby("path")["defect_type"].first()
        items["defect_type"] = items["path"].map(types).fillna("")
    if "mask_path" in table:
        masks = table[table["mask_path"] != ""].groupby("path")["mask_path"].first()
        items["mask_path"] = items["path"].map(
            lambda p: str((root / masks[p]).resolve()) if p in masks.index else None
        )
        check_masks(items, root, source)
    return items, boxes

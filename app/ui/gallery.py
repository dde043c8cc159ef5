"""Choosing images: from a data set found on disk (filtered by class and defect type) or an upload.

The gallery choices use the same widget keys on every page and persist for the session, so the
image picked on the CAM Inspector is still picked on Heatmap to Boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from ui.dataset_resources import Dataset, datasets, read_path, read_upload
from ui.resources import image_key

ALL = "all"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"]


@dataclass
class Picked:
    """A decoded image plus whatever ground truth is known about it."""

    image: np.ndarray
    name: str
    key: str
    label: str | None = None
    defect_type: str = ""
    mask: np.ndarray | None = None
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    path: str | None = None


def _forget_invalid(key: str, options: list) -> None:
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def choose_dataset(where=st, prefix: str = "gallery_") -> Dataset | None:
    """A data set selectbox (hidden when only one exists); None with a hint when none exist."""
    found, _ = datasets()
    if not found:
        where.info(
            "No image data set found in `samples/` or the data folder: run `make demo`, "
            "or upload images instead.",
            icon=":material/info:",
        )
        return None
    names = [ds.name for ds in found]
    if len(found) == 1:
        return found[0]
    _forget_invalid(f"{prefix}dataset", names)
    name = where.selectbox(
        "Data set",
        names,
        key=f"{prefix}dataset",
        help="Image data sets found in samples/ and the data folder.",
        persist_state="session",
    )
    return found[names.index(name)]


def filter_items(
    ds: Dataset, where=st, prefix: str = "gallery_", defects_first: bool = False
) -> pd.DataFrame:
    """Class and defect-type filters over a data set's items (test split first).

    defects_first: start on the first defect class instead of all classes.
    """
    slots = where.columns(2)
    classes = [ALL, *ds.class_names]
    _forget_invalid(f"{prefix}class", classes)
    start = 0
    if defects_first:
        start = next((i for i, c in enumerate(classes) if c not in (ALL, ds.normal_class)), 0)
    label = slots[0].selectbox(
        "Class",
        classes,
        index=start,
        key=f"{prefix}class",
        help="Show only images of this class.",
        persist_state="session",
    )
    items = ds.items if label == ALL else ds.items[ds.items["label"] == label]
    types = [ALL, *sorted(t for t in items["defect_type"].unique() if t)]
    _forget_invalid(f"{prefix}defect", types)
    defect = slots[1].selectbox(
        "Defect type",
        types,
        key=f"{prefix}defect",
        help="Show only defects of this type (from annotations or masks).",
        persist_state="session",
    )
    if defect != ALL:
        items = items[items["defect_type"] == defect]
    order = items["split"].map({"test": 0, "val": 1, "train": 2}).fillna(3)
    return items.assign(_order=order).sort_values(["_order", "path"]).drop(columns="_order")


def ground_truth(ds: Dataset, row: pd.Series) -> tuple[np.ndarray | None, list]:
    """The mask (uint8 HxW) and boxes (x_min, y_min, x_max, y_max) recorded for a gallery item."""
    mask = None
    mask_path = row.get("mask_path")
    if isinstance(mask_path, str) and mask_path and Path(mask_path).is_file():
        mask = read_path(mask_path)
        if mask.ndim == 3:
            mask = mask[:, :, 0]
    boxes = ds.boxes[ds.boxes["path"] == row["path"]] if len(ds.boxes) else ds.boxes
    coords = [
        tuple(int(v) for v in b)
        for b in boxes[["x_min", "y_min", "x_max", "y_max"]].dropna().itertuples(index=False)
    ]
    return mask, coords


def picked_from_row(ds: Dataset, row: pd.Series) -> Picked:
    image = read_path(row["path"])
    mask, boxes = ground_truth(ds, row)
    return Picked(
        image=image,
        name=Path(row["path"]).name,
        key=image_key(image),
        label=row["label"],
        defect_type=row.get("defect_type") or "",
        mask=mask,
        boxes=boxes,
        path=row["path"],
    )


def _step(paths: list[str], delta: int) -> None:
    """Move the image selection by `delta` (wrapping), before the rerun draws the selectbox."""
    current = st.session_state.get("gallery_image")
    index = paths.index(current) if current in paths else 0
    st.session_state["gallery_image"] = paths[(index + delta) % len(paths)]


def _pick_from_gallery(where) -> Picked | None:
    ds = choose_dataset(where)
    if ds is None:
        return None
    items = filter_items(ds, where)
    if items.empty:
        where.warning("No image matches these filters.", icon=":material/filter_alt_off:")
        return None
    paths = items["path"].tolist()
    _forget_invalid("gallery_image", paths)
    labels = dict(zip(items["path"], items["label"], strict=True))
    splits = dict(zip(items["path"], items["split"], strict=True))
    pick, back, forward = where.columns([12, 1, 1], vertical_alignment="bottom")
    path = pick.selectbox(
        f"Image ({len(paths)} shown)",
        paths,
        key="gallery_image",
        format_func=lambda p: f"{Path(p).name} · {labels[p]} · {splits[p]}",
        help="Images of the data set, test split first.",
        persist_state="session",
    )
    back.button(
        "",
        icon=":material/chevron_left:",
        key="gallery_previous",
        help="Previous image",
        on_click=_step,
        args=(paths, -1),
    )
    forward.button(
        "",
        icon=":material/chevron_right:",
        key="gallery_next",
        help="Next image",
        on_click=_step,
        args=(paths, 1),
    )
    return picked_from_row(ds, items[items["path"] == path].iloc[0])


def _pick_upload(where, key: str) -> Picked | None:
    upload = where.file_uploader(
        "Upload an image",
        type=UPLOAD_TYPES,
        key=key,
        help="PNG, JPEG, BMP or TIFF; 8 or 16 bit, gray or colour.",
    )
    if upload is None:
        where.info("Upload an image to inspect it.", icon=":material/upload:")
        return None
    from imaging import ImageError

    try:
        image = read_upload(upload.getvalue(), upload.name)
    except ImageError as exc:
        where.error(f"Could not read **{exc.source}**: {exc.reason}", icon=":material/error:")
        return None
    return Picked(image=image, name=upload.name, key=image_key(image))


def choose_image(where=st, upload_key: str = "upload_image") -> Picked | None:
    """Gallery or upload; returns the decoded image with its ground truth when known."""
    source = where.segmented_control(
        "Image source",
        ["Gallery", "Upload"],
        default="Gallery",
        required=True,
        key="image_source",
        help="Pick from the demo gallery (with ground truth) or upload your own image.",
        persist_state="session",
    )
    if source == "Upload":
        return _pick_upload(where, upload_key)
    return _pick_from_gallery(where)

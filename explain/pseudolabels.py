"""Which heatmap boxes become pseudo-labels for a detector, and with which numbers.

A box is exported only for a part the classifier calls defective (the caller passes the run's
decision per image); a part called good gets no boxes, because its defect-class heatmap shows
where the model would look *if* there were a defect, not a defect. Good parts may be kept as
explicit negatives: an image entry with no annotations (COCO allows that), never a box.

Every row carries two different numbers: `defect_probability` (the classifier's, per image)
and `box_peak_heat` / `box_mean_heat` (the heatmap inside the box, 0-1 on the map's scale);
neither is called "score".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from explain.boxes import Box
from explain.layers import ExplainError

BOX_COLUMNS = [
    "file",
    "width",
    "height",
    "label",
    "predicted_class",
    "defect_probability",
    "x_min",
    "y_min",
    "x_max",
    "y_max",
    "box_peak_heat",
    "box_mean_heat",
]


@dataclass(frozen=True)
class ImageLabels:
    """One exported image: its classifier verdict and the boxes kept for it (maybe none)."""

    file: str
    width: int
    height: int
    label: str
    predicted_class: str
    defect_probability: float
    predicted_defect: bool
    boxes: tuple[Box, ...] = field(default_factory=tuple)


def select_for_export(
    images: Sequence[ImageLabels], include_negatives: bool = False
) -> list[ImageLabels]:
    """Predicted-defective images keep their boxes; predicted-good ones are dropped, or kept
    with no boxes as explicit negatives when `include_negatives`."""
    kept = []
    for image in images:
        if image.predicted_defect:
            kept.append(image)
        elif include_negatives:
            kept.append(_without_boxes(image))
    return kept


def _without_boxes(image: ImageLabels) -> ImageLabels:
    fields = {k: getattr(image, k) for k in image.__dataclass_fields__}
    return ImageLabels(**{**fields, "boxes": ()})


def boxes_table(images: Sequence[ImageLabels]) -> pd.DataFrame:
    """One row per box (negatives contribute no row), original pixel coordinates."""
    rows = [
        {
            "file": im.file,
            "width": im.width,
            "height": im.height,
            "label": im.label,
            "predicted_class": im.predicted_class,
            "defect_probability": round(float(im.defect_probability), 4),
            "x_min": b.x_min,
            "y_min": b.y_min,
            "x_max": b.x_max,
            "y_max": b.y_max,
            "box_peak_heat": round(float(b.score), 4),
            "box_mean_heat": round(float(b.mean), 4),
        }
        for im in images
        for b in im.boxes
    ]
    return pd.DataFrame(rows, columns=BOX_COLUMNS)


def coco_json(images: Sequence[ImageLabels], description: str = "") -> str:
    """Every exported image (negatives with no annotations) and its boxes as COCO JSON.

    bbox is [x, y, width, height] in original pixels; category ids from 1 in order of
    appearance. Each annotation keeps `defect_probability` and `box_peak_heat` apart.
    """
    entries, annotations, categories = [], [], {}
    for image_id, im in enumerate(images, start=1):
        if not im.predicted_defect and im.boxes:
            raise ExplainError(f"{im.file}: a part predicted good cannot carry defect boxes")
        entries.append(
            {
                "id": image_id,
                "file_name": im.file,
                "width": im.width,
                "height": im.height,
                "predicted_class": im.predicted_class,
                "defect_probability": round(float(im.defect_probability), 4),
            }
        )
        for box in im.boxes:
            category = categories.setdefault(im.label, len(categories) + 1)
            w, h = box.x_max - box.x_min, box.y_max - box.y_min
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [box.x_min, box.y_min, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "defect_probability": round(float(im.defect_probability), 4),
                    "box_peak_heat": round(float(box.score), 4),
                }
            )
    coco = {
        "info": {"description": description},
        "images": entries,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in categories.items()],
    }
    return json.dumps(coco, indent=1)

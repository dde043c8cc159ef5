"""Box tables for download: one CSV row per box, and the same boxes as a COCO detection set.

Same conventions as store.review's COCO export: bbox [x, y, width, height] in original pixels,
category ids from 1 in order of appearance.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

BOX_COLUMNS = ["file", "width", "height", "label", "x_min", "y_min", "x_max", "y_max", "score"]


def boxes_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """records: {file, width, height, label, boxes: [Box...]} -> one row per box."""
    rows = [
        {
            "file": r["file"],
            "width": r["width"],
            "height": r["height"],
            "label": r["label"],
            "x_min": b.x_min,
            "y_min": b.y_min,
            "x_max": b.x_max,
            "y_max": b.y_max,
            "score": round(float(b.score), 4),
        }
        for r in records
        for b in r["boxes"]
    ]
    return pd.DataFrame(rows, columns=BOX_COLUMNS)


def coco_json(records: list[dict[str, Any]], description: str = "") -> str:
    """Every image (with or without boxes) and its boxes as COCO detection JSON."""
    images, annotations, categories = [], [], {}
    for image_id, record in enumerate(records, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": record["file"],
                "width": record["width"],
                "height": record["height"],
            }
        )
        for box in record["boxes"]:
            category = categories.setdefault(record["label"], len(categories) + 1)
            w, h = box.x_max - box.x_min, box.y_max - box.y_min
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [box.x_min, box.y_min, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "score": round(float(box.score), 4),
                }
            )
    coco = {
        "info": {"description": description},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in categories.items()],
    }
    return json.dumps(coco, indent=1)

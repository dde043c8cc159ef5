"""The review log as a person reads it: labels instead of codes, paths relative to the log's
image folder, times in a named zone.

`ReviewLog.export_csv` stays the machine format (codes, absolute stored paths, UTC ISO times)
for round trips (`write_items_csv`); `readable_items` turns `ReviewLog.items(batch)` into what
a QA engineer downloads from the dashboard; `coco_dataset` is the batch as COCO detections.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pandas as pd

from store.review_images import image_size
from store.review_validation import ReviewError

ITEM_COLUMNS = [
    "item_id",
    "file_name",
    "sha256",
    "image_path",
    "width",
    "height",
    "predicted_class",
    "defect_probability",
    "class_probabilities",
    "anomaly_score",
    "anomaly_flag",
    "boxes",
    "risk_score",
    "classifier_run",
    "autoencoder_run",
    "error",
    "verdict",
    "defect_type",
    "comment",
    "reviewer",
    "decided_at",
    "n_decisions",
]

VERDICT_LABELS = {
    "confirmed_defect": "Confirm defect",
    "false_alarm": "False alarm",
    "ok": "OK",
    "unsure": "Unsure",
}
READABLE_COLUMNS = [
    "item_id",
    "file_name",
    "stored_copy",
    "predicted_class",
    "defect_probability",
    "anomaly_score",
    "anomaly_flag",
    "risk_score",
    "n_boxes",
    "verdict",
    "defect_type",
    "comment",
    "reviewer",
    "decided_at",
    "n_decisions",
    "error",
]


def readable_items(items: pd.DataFrame, images_root: str | Path, zone: str = "UTC") -> pd.DataFrame:
    """One row per item: verdict labels ("Confirm defect"), the stored copy relative to
    `images_root`, decision time as 'YYYY-MM-DD HH:MM:SS <zone>', empty cells for no value."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, tz = "UTC", ZoneInfo("UTC")
    root = Path(images_root)
    out = pd.DataFrame(index=items.index)
    for column in READABLE_COLUMNS:
        if column in items:
            out[column] = items[column]
    out["stored_copy"] = items["image_path"].map(lambda p: _relative(p, root))
    out["verdict"] = items["verdict"].map(lambda v: VERDICT_LABELS.get(v, v))
    out["n_boxes"] = items["boxes"].map(lambda b: len(b) if isinstance(b, list) else 0)
    stamps = pd.to_datetime(items["decided_at"], utc=True)
    out["decided_at"] = stamps.dt.tz_convert(tz).dt.strftime(f"%Y-%m-%d %H:%M:%S {zone}")
    return out[READABLE_COLUMNS].astype(object).where(out[READABLE_COLUMNS].notna(), "")


def _relative(path: object, root: Path) -> str:
    if not isinstance(path, str) or not path:
        return ""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return Path(path).name  # never a server-side absolute path


def write_items_csv(rows: list[dict[str, Any]], path_or_buffer: str | Path | IO[str]) -> int:
    """The machine format: one row per item, JSON for probabilities and boxes, ISO times."""
    for row in rows:
        for key in ("class_probabilities", "boxes"):
            row[key] = None if row[key] is None else json.dumps(row[key])
        if row["decided_at"] is not None:
            row["decided_at"] = row["decided_at"].isoformat()
    pd.DataFrame(rows, columns=ITEM_COLUMNS).to_csv(path_or_buffer, index=False)
    return len(rows)


def coco_dataset(
    rows: list[dict[str, Any]], batch: dict[str, Any], images_dir: Path, boxes: str = "reviewed"
) -> dict[str, Any]:
    """The batch's item rows as a COCO detection data set (see ReviewLog.export_coco)."""
    if boxes not in ("reviewed", "predicted"):
        raise ReviewError("boxes", f"{boxes!r} is not one of reviewed, predicted")
    images, annotations, categories = [], [], {}
    for row in (SimpleNamespace(**r) for r in rows):
        if row.error:
            continue
        if boxes == "reviewed":
            if row.verdict not in ("confirmed_defect", "false_alarm", "ok"):
                continue
            keep = (row.boxes or []) if row.verdict == "confirmed_defect" else []
            labels = [row.defect_type or row.predicted_class or "defect"] * len(keep)
        else:
            keep = row.boxes or []
            labels = [b.get("label") or row.predicted_class or "defect" for b in keep]
        width, height = image_size(row)
        images.append(
            {
                "id": int(row.item_id),
                "file_name": str(Path(row.image_path).relative_to(images_dir)),
                "width": width,
                "height": height,
                "original_file_name": row.file_name,
                "sha256": row.sha256,
                "verdict": row.verdict,
                "defect_type": row.defect_type,
                "reviewer": row.reviewer,
            }
        )
        for box, label in zip(keep, labels, strict=True):
            category_id = categories.setdefault(label, len(categories) + 1)
            x, y = box["x_min"], box["y_min"]
            w, h = box["x_max"] - x, box["y_max"] - y
            annotation = {
                "id": len(annotations) + 1,
                "image_id": int(row.item_id),
                "category_id": category_id,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if boxes == "predicted" and "score" in box:
                annotation["score"] = box["score"]
            annotations.append(annotation)
    return {
        "info": {
            "description": f"DefectLens review batch {batch['name']!r} ({boxes} boxes)",
            "batch_id": batch["batch_id"],
            "classifier_run": batch["classifier_run"],
            "autoencoder_run": batch["autoencoder_run"],
            "images_root": str(images_dir),
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": cid, "name": name, "supercategory": "defect"} for name, cid in categories.items()
        ],
    }

"""The review log as a person reads it: labels instead of codes, paths relative to the log's
image folder, times in a named zone.

`ReviewLog.export_csv` stays the machine format (codes, absolute stored paths, UTC ISO times)
for round trips; `readable_items` turns `ReviewLog.items(batch)` into what a QA engineer
downloads from the dashboard.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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

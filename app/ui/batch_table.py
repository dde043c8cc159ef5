"""The Batch Review triage table: review-log items sorted by risk, and the page's filters.

Plain pandas, no Streamlit, so the filtering is testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from inspection.risk import triage_order
from store.review_export import VERDICT_LABELS
from store.thresholds import DEFAULT_THRESHOLD, decide

REVIEW_STATES = ("all", "unreviewed", "reviewed")
TABLE_COLUMNS = [
    "triage_rank",
    "item_id",
    "file_name",
    "risk_score",
    "predicted_class",
    "defect_probability",
    "anomaly_score",
    "anomaly_flag",
    "disagree",
    "n_boxes",
    "verdict",
    "defect_type",
    "reviewer",
]


def triage_table(items: pd.DataFrame, normal_class: str | None) -> pd.DataFrame:
    """Scored items, riskiest first, with `disagree` and `n_boxes`; unreadable items left out.

    The classifier calls a part defective when its predicted class is not the normal class
    (without the run's normal class: defect probability at or above one half, the default).
    """
    scored = items[items["error"].isna()].copy()
    if normal_class is not None:
        predicted_defect = scored["predicted_class"] != normal_class
    else:
        predicted_defect = decide(scored["defect_probability"].astype(float), DEFAULT_THRESHOLD)
    flag = scored["anomaly_flag"]
    scored["disagree"] = flag.notna() & (predicted_defect != flag.fillna(False).astype(bool))
    scored["n_boxes"] = scored["boxes"].map(lambda b: len(b) if isinstance(b, list) else 0)
    return triage_order(scored)


@dataclass(frozen=True)
class Filters:
    """What the reviewer narrowed the table to; None ranges and classes mean no filter."""

    classes: tuple[str, ...] | None = None
    disagree_only: bool = False
    risk: tuple[float, float] | None = None
    defect_probability: tuple[float, float] | None = None
    anomaly_score: tuple[float, float] | None = None
    review: str = "all"


def _within(values: pd.Series, bounds: tuple[float, float] | None) -> pd.Series:
    if bounds is None:
        return pd.Series(True, index=values.index)
    numbers = values.astype(float)
    return numbers.between(bounds[0], bounds[1]) | numbers.isna()


def apply_filters(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows of the triage table that pass every filter, order kept.

    Range filters keep items that lack the score (e.g. no autoencoder ran on the batch).
    """
    keep = pd.Series(True, index=table.index)
    if filters.classes is not None:
        keep &= table["predicted_class"].isin(filters.classes)
    if filters.disagree_only:
        keep &= table["disagree"]
    keep &= _within(table["risk_score"], filters.risk)
    keep &= _within(table["defect_probability"], filters.defect_probability)
    keep &= _within(table["anomaly_score"], filters.anomaly_score)
    if filters.review == "unreviewed":
        keep &= table["verdict"].isna()
    elif filters.review == "reviewed":
        keep &= table["verdict"].notna()
    return table[keep.to_numpy(bool)]


def score_bounds(values: pd.Series) -> tuple[float, float] | None:
    """(min, max) of the known values, widened a little so sliders never collapse."""
    numbers = values.dropna().astype(float)
    if numbers.empty:
        return None
    low, high = float(numbers.min()), float(numbers.max())
    pad = max((high - low) * 0.01, abs(high) * 1e-3, 1e-6)
    return low - pad, high + pad


def item_label(row: pd.Series) -> str:
    """One line per item for the picker: name, risk, verdict so far."""
    verdict = VERDICT_LABELS.get(row["verdict"], "unreviewed")
    risk = "n/a" if pd.isna(row["risk_score"]) else f"{row['risk_score']:.2f}"
    return f"{row['file_name']} · risk {risk} · {verdict}"


def neighbours(ids: list[int], current: int | None) -> tuple[int | None, int | None]:
    """(previous, next) item ids around `current` in the filtered order."""
    if current not in ids:
        return None, (ids[0] if ids else None)
    i = ids.index(current)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


def box_tuples(boxes: object) -> list[tuple[float, float, float, float]]:
    """Stored box dicts -> (x_min, y_min, x_max, y_max) for drawing."""
    if not isinstance(boxes, list):
        return []
    return [tuple(float(b[k]) for k in ("x_min", "y_min", "x_max", "y_max")) for b in boxes]


def summary_counts(table: pd.DataFrame) -> dict[str, int]:
    """Headline numbers of a batch: scored, reviewed, flagged by either model, disagreements."""
    flagged = (table["risk_score"].astype(float) > 0.5).to_numpy(bool)
    return {
        "scored": len(table),
        "reviewed": int(table["verdict"].notna().sum()),
        "flagged": int(np.sum(flagged)),
        "disagree": int(table["disagree"].sum()),
    }


def text_or_empty(value: object) -> str:
    """A stored text field for a widget: missing values (None, NaN from pandas) become ''."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def local_times(times: pd.Series, zone: str) -> pd.Series:
    """Stored decision times (UTC; naive values are UTC) as 'YYYY-MM-DD HH:MM:SS' in `zone`
    (an IANA name such as Europe/Berlin; unknown names fall back to UTC)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    stamps = pd.to_datetime(times, utc=True)
    return stamps.dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M:%S")

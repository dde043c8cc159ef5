"""What the review log accepts: text fields, numbers and boxes checked and cleaned before they
reach the database, each refusal a ReviewError naming the argument to fix."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

# Keys `add_item` accepts in its `predictions` mapping (model outputs plus the image size).
ITEM_FIELDS = (
    "predicted_class",
    "defect_probability",
    "class_probabilities",
    "anomaly_score",
    "anomaly_flag",
    "boxes",
    "classifier_run",
    "autoencoder_run",
    "risk_score",
    "error",
    "width",
    "height",
)
_FLOAT_FIELDS = ("defect_probability", "anomaly_score", "risk_score")
_INT_FIELDS = ("width", "height")
_TEXT_FIELDS = ("predicted_class", "classifier_run", "autoencoder_run", "error")
_BOX_KEYS = ("x_min", "y_min", "x_max", "y_max")


class ReviewError(ValueError):
    """Bad input to the review log; `.field` names the argument to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def text_field(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(field, f"expected text, got {type(value).__name__}")
    return value


def optional_text(field: str, value: Any, max_len: int) -> str | None:
    text = text_field(field, value).strip()
    if len(text) > max_len:
        raise ReviewError(field, f"longer than {max_len} characters")
    return text or None


def required_text(field: str, value: Any, max_len: int) -> str:
    text = optional_text(field, value, max_len)
    if text is None:
        raise ReviewError(field, "must not be empty")
    return text


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA: how a missing prediction arrives from a DataFrame row."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(field: str, value: Any) -> float | None:
    if _missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReviewError(field, f"expected a number, got {value!r}") from None
    return None if math.isnan(number) else number


def clean_predictions(predictions: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(predictions) - set(ITEM_FIELDS))
    if unknown:
        raise ReviewError(
            "predictions", f"unknown keys {unknown}; accepted keys: {', '.join(ITEM_FIELDS)}"
        )
    fields: dict[str, Any] = {}
    for key, value in predictions.items():
        if key in _FLOAT_FIELDS:
            fields[key] = _number(key, value)
        elif key in _INT_FIELDS:
            number = _number(key, value)
            fields[key] = None if number is None else int(number)
        elif key in _TEXT_FIELDS:
            fields[key] = None if _missing(value) else optional_text(key, value, 10_000)
        elif key == "anomaly_flag":
            fields[key] = None if _missing(value) else bool(value)
        elif key == "class_probabilities":
            fields[key] = _probabilities(value)
        elif key == "boxes":
            fields[key] = _boxes(value)
    for key in ("classifier_run", "autoencoder_run"):
        if fields.get(key) is None:
            fields.pop(key, None)
    return fields


def _probabilities(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ReviewError("class_probabilities", f"expected {{class: probability}}, got {value!r}")
    return {str(k): _number("class_probabilities", v) for k, v in value.items()}


def _boxes(value: Any) -> list[dict[str, Any]] | None:
    """Boxes as dicts x_min, y_min, x_max, y_max [, score, label] from dicts, tuples or objects."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ReviewError("boxes", f"expected a list of boxes, got {value!r}")
    boxes = []
    for box in value:
        if isinstance(box, Mapping):
            raw = dict(box)
        elif all(hasattr(box, k) for k in _BOX_KEYS):
            raw = {k: getattr(box, k) for k in (*_BOX_KEYS, "score", "label") if hasattr(box, k)}
        elif isinstance(box, Iterable) and len(tuple(box)) in (4, 5):
            raw = dict(zip((*_BOX_KEYS, "score"), tuple(box), strict=False))
        else:
            raise ReviewError("boxes", f"cannot read box {box!r}; use x_min, y_min, x_max, y_max")
        missing = [k for k in _BOX_KEYS if k not in raw]
        if missing:
            raise ReviewError("boxes", f"box {box!r} lacks {', '.join(missing)}")
        clean: dict[str, Any] = {k: _number("boxes", raw[k]) for k in _BOX_KEYS}
        if None in clean.values():
            raise ReviewError("boxes", f"box {box!r} has a missing coordinate")
        if raw.get("score") is not None:
            clean["score"] = _number("boxes", raw["score"])
        if raw.get("label"):
            clean["label"] = str(raw["label"])
        boxes.append(clean)
    return boxes

"""Which class a heatmap explains when it is judged against a defect mask."""

from __future__ import annotations

from typing import Any


def defect_class_index(info: dict[str, Any], defect_type: str) -> int:
    """The class whose heatmap we judge: the image's own defect type if the model knows it,
    else the run's defect class; -1 (the prediction) when the run names none."""
    names = list(info.get("class_names") or [])
    if defect_type and defect_type in names:
        return names.index(defect_type)
    defect = info.get("defect_class")
    if defect in names:
        return names.index(defect)
    return -1

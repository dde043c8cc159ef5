"""Batch inspection: many uploaded parts through every model, sorted by risk for review.

The names below load on first use (PEP 562), so `python -m inspection.ray_pool --list` and other
light tools do not import TensorFlow through this package.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "IntakeReport": "inspection.intake",
    "inspect_into_review": "inspection.intake",
    "record_result": "inspection.intake",
    "RESULT_COLUMNS": "inspection.pipeline",
    "STAGES": "inspection.pipeline",
    "Entry": "inspection.pipeline",
    "Inspector": "inspection.pipeline",
    "inspect_batch": "inspection.pipeline",
    "iter_inspect": "inspection.pipeline",
    "InspectionError": "inspection.errors",
    "anomaly_ratio": "inspection.risk",
    "disagreement": "inspection.risk",
    "risk_score": "inspection.risk",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'inspection' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])

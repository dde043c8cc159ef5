"""Batch inspection: many uploaded parts through every model, sorted by risk for review."""

from inspection.intake import IntakeReport, inspect_into_review, record_result
from inspection.pipeline import (
    RESULT_COLUMNS,
    STAGES,
    Entry,
    InspectionError,
    Inspector,
    inspect_batch,
    iter_inspect,
)
from inspection.risk import anomaly_ratio, disagreement, risk_score

__all__ = [
    "RESULT_COLUMNS",
    "STAGES",
    "Entry",
    "InspectionError",
    "Inspector",
    "IntakeReport",
    "anomaly_ratio",
    "disagreement",
    "inspect_batch",
    "inspect_into_review",
    "iter_inspect",
    "record_result",
    "risk_score",
]

"""The decision rule of every thresholded model, and the threshold record a run keeps.

One rule everywhere (classifier defect probability, autoencoder score, melting-tank NG
probability): a score at or above the threshold is positive (`decide`). A run stores its current
threshold as `threshold` in run.json and, for classifiers, every threshold it was ever given in
`threshold_history` (value, how it was chosen, the validation precision/recall it gave, who set
it and when); the last entry is the current one. Runs without a threshold decide at 0.5.
"""

from __future__ import annotations

import getpass
import json
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from store.runs import INFO_FILE, RunError, _write_json

DEFAULT_THRESHOLD = 0.5
HISTORY_KEY = "threshold_history"


def decide(scores: float | Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """The decision rule of every run: a score at or above the threshold is positive."""
    return np.asarray(scores, dtype=np.float64) >= float(threshold)


def run_threshold(info: dict[str, Any]) -> float:
    """The threshold a run decides with: its recorded one, else DEFAULT_THRESHOLD (0.5)."""
    value = info.get("threshold")
    return DEFAULT_THRESHOLD if value is None else float(value)


def threshold_source(info: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the run's current threshold, or None for runs that never had one."""
    history = info.get(HISTORY_KEY) or []
    return dict(history[-1]) if history else None


def describe_threshold(info: dict[str, Any]) -> str:
    """One line for the UI and reports: the value and where it came from."""
    record = threshold_source(info)
    value = run_threshold(info)
    if info.get("threshold") is None:
        return f"{value:.4g} (default: this run has no recorded threshold)"
    if record is None:
        method = info.get("threshold_method")
        return f"{value:.4g}" + (f" ({method})" if method else "")
    parts = [f"{value:.4g}", f"policy {record.get('policy')}"]
    if record.get("precision") is not None and record.get("recall") is not None:
        parts.append(
            f"{record.get('split', 'validation')} precision {record['precision']:.3f}, "
            f"recall {record['recall']:.3f}"
        )
    parts.append(f"set by {record.get('set_by')} at {record.get('set_at')}")
    return "; ".join(parts)


def current_user() -> str:
    """Who is changing a threshold: DEFECTLENS_USER, else the login name."""
    try:
        fallback = getpass.getuser()
    except (KeyError, OSError):
        fallback = "unknown"
    return os.environ.get("DEFECTLENS_USER") or fallback


def threshold_record(
    value: float,
    policy: str,
    split: str = "validation",
    precision: float | None = None,
    recall: float | None = None,
    set_by: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One entry of `threshold_history`; checks the value is a probability-like number."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold {value!r} must be a number between 0 and 1")
    record = {
        "value": value,
        "policy": str(policy),
        "split": split,
        "precision": None if precision is None else float(precision),
        "recall": None if recall is None else float(recall),
        "set_by": set_by or current_user(),
        "set_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if note:
        record["note"] = note
    return record


def with_threshold(info: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A copy of run.json's content with `record` as the current threshold (history kept)."""
    history = [*(info.get(HISTORY_KEY) or []), record]
    return {**info, "threshold": record["value"], HISTORY_KEY: history}


def save_threshold(run_dir: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Make `record` the run's threshold in its run.json (atomically); returns the new content."""
    path = Path(run_dir) / INFO_FILE
    if not path.exists():
        raise RunError(f"{run_dir} is not a run folder: it has no {INFO_FILE}")
    info = json.loads(path.read_text())
    if info.get("kind") != "classifier":
        raise RunError(
            f"run {Path(run_dir).name!r} is a {info.get('kind')} run; thresholds are saved "
            "from the app for classifier runs only (the others choose theirs when trained)"
        )
    updated = with_threshold(info, record)
    _write_json(path, updated)
    return updated

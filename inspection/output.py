"""Writing a results table: CSV, or Parquet for large runs (chosen by the file's suffix).

Rows are sorted by risk, most worrying first; the class probabilities and boxes are stored as
JSON text in both formats, so a results file reads back the same whichever engine wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from inspection.pipeline import InspectionError
from store.cli_errors import atomic_output

JSON_COLUMNS = ("class_probabilities", "boxes")
FORMATS = (".csv", ".parquet")


def results_format(out: str | Path) -> str:
    """'.csv' or '.parquet' from the output name; anything else is refused by name."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise InspectionError(
            f"{out}: unknown results format {suffix or '(no suffix)'!r}; "
            f"name the output .csv or .parquet"
        )
    return suffix


def write_results(frame: pd.DataFrame, out: str | Path) -> Path:
    """The results sorted by risk score (highest first) into `out` (.csv or .parquet)."""
    suffix = results_format(out)
    table = frame.copy()
    for column in JSON_COLUMNS:
        table[column] = table[column].map(lambda v: None if _missing(v) else json.dumps(v))
    table = table.sort_values("risk_score", ascending=False, kind="stable")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        if suffix == ".parquet":
            try:
                table.to_parquet(tmp, index=False)
            except ImportError as exc:
                raise InspectionError(
                    f"{out}: writing Parquet needs pyarrow (pip install pyarrow); or name it .csv"
                ) from exc
        else:
            table.to_csv(tmp, index=False)
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)

"""Read a melting-tank log in the KAMP schema, refusing bad rows by line number.

The real KAMP file (STD_DT, NUM, MELT_TEMP, MOTORSPEED, MELT_WEIGHT, INSP, TAG) loads unchanged;
so do in-house logs with extra columns, other column-name case, or 1/0 tags (OK = 1). Every
problem found is reported at once, each with its count and the first offending CSV lines
(the header is line 1), in one KampFormatError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REQUIRED = ("MELT_TEMP", "MOTORSPEED", "TAG")
OPTIONAL = ("STD_DT", "NUM", "MELT_WEIGHT", "INSP")
NUMERIC = ("NUM", "MELT_TEMP", "MOTORSPEED", "MELT_WEIGHT", "INSP")
ORDER = ("STD_DT", "NUM", "MELT_TEMP", "MOTORSPEED", "MELT_WEIGHT", "INSP", "TAG")
TAG_VALUES = {"OK": "OK", "NG": "NG", "1": "OK", "0": "NG", "1.0": "OK", "0.0": "NG"}
TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "ISO8601",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
)
SHOWN_LINES = 5
# Rows an uploaded log may have: the full KAMP log (835,200 rows) with room to spare.
MAX_UPLOAD_ROWS = 1_000_000
HEADER_LINES = 1


@dataclass(frozen=True)
class Problem:
    """One kind of bad value in one column: what, where (CSV lines) and how often."""

    column: str
    reason: str
    lines: tuple[int, ...]
    count: int
    example: str = ""

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.lines[:SHOWN_LINES]))
        more = f" (and {self.count - SHOWN_LINES} more)" if self.count > SHOWN_LINES else ""
        example = f" e.g. {self.example!r}" if self.example else ""
        return f"{self.column}: {self.count} {self.reason} at line {shown}{more}{example}"


class KampFormatError(ValueError):
    """A melting-tank CSV that cannot be used as it is; `.problems` lists what and where."""

    def __init__(self, source: str, problems: Sequence[Problem | str]) -> None:
        self.source = source
        self.problems = list(problems)
        details = "\n  ".join(str(p) for p in self.problems)
        super().__init__(
            f"{source}: not a usable melting-tank log (KAMP schema; lines count the header as "
            f"line 1):\n  {details}\nFix these rows or columns in the file and load it again."
        )


def _source_name(path_or_buffer: str | Path | IO) -> str:
    if isinstance(path_or_buffer, str | Path):
        return Path(path_or_buffer).name
    return Path(str(getattr(path_or_buffer, "name", "<uploaded CSV>"))).name


def _lines(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask) + HEADER_LINES + 1


def _problem(
    column: str, reason: str, mask: np.ndarray, values: pd.Series | None = None
) -> Problem | None:
    """A Problem for the rows in `mask` (None when there are none); `values` gives an example."""
    if not mask.any():
        return None
    lines = _lines(mask)
    example = "" if values is None else str(values.iloc[int(np.flatnonzero(mask)[0])])
    return Problem(column, reason, tuple(int(x) for x in lines[:SHOWN_LINES]), lines.size, example)


def _read(path_or_buffer: str | Path | IO, source: str, max_rows: int | None) -> pd.DataFrame:
    if isinstance(path_or_buffer, str | Path):
        path = Path(path_or_buffer)
        if path.exists() and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file (a pipe or device)"
            raise KampFormatError(source, [f"{path} is {kind}; give the CSV file itself"])
    limit = None if max_rows is None else max_rows + 1
    try:
        raw = pd.read_csv(
            path_or_buffer, dtype={"TAG": str, "tag": str}, skipinitialspace=True, nrows=limit
        )
    except FileNotFoundError as exc:
        raise KampFormatError(source, [f"file not found: {exc.filename}"]) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise KampFormatError(source, [f"cannot be read as CSV ({exc})"]) from exc
    if max_rows is not None and len(raw) > max_rows:
        raise KampFormatError(
            source, [f"more than {max_rows:,} rows (the limit here); split the log into parts"]
        )
    return raw


def _canonical_columns(raw: pd.DataFrame, source: str, required: Sequence[str]) -> pd.DataFrame:
    names = [str(c).replace("\ufeff", "").strip().upper() for c in raw.columns]
    known = [n for n in names if n in ORDER]
    clashes = sorted({n for n in known if known.count(n) > 1})
    problems: list[Problem | str] = []
    if clashes:
        problems.append(f"columns appear more than once (ignoring case): {', '.join(clashes)}")
    missing = [c for c in required if c not in names]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "none"
        problems.append(
            f"missing required column(s) {', '.join(missing)} (found: {found}); "
            f"a KAMP log needs {', '.join(REQUIRED)}"
        )
    if problems:
        raise KampFormatError(source, problems)
    renamed = raw.copy()
    renamed.columns = [n if n in ORDER else str(c) for n, c in zip(names, raw.columns, strict=True)]
    return renamed


def _numbers(frame: pd.DataFrame, column: str, problems: list[Problem]) -> pd.Series:
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.astype(np.float64)
        unparsable = np.zeros(len(raw), dtype=bool)
    else:
        text = raw.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").astype(np.float64)
        unparsable = (values.isna() & text.notna() & (text != "")).to_numpy()
        problems.append(_problem(column, "value(s) that are not numbers", unparsable, raw))
    arr = values.to_numpy()
    missing = ~np.isfinite(arr) & ~unparsable
    problems.append(_problem(column, "missing (NaN) or infinite value(s)", missing))
    if column == "NUM" and np.isfinite(arr).all() and (arr != np.round(arr)).any():
        problems.append(_problem(column, "non-integer row number(s)", arr != np.round(arr), raw))
    return values


def _tags(frame: pd.DataFrame, problems: list[Problem]) -> pd.Series:
    raw = frame["TAG"]
    text = raw.astype("string").str.strip().str.upper()
    tags = text.map(TAG_VALUES)
    missing = text.isna().to_numpy() | (text == "").to_numpy()
    problems.append(_problem("TAG", "missing tag(s)", missing))
    bad = tags.isna().to_numpy() & ~missing
    problems.append(_problem("TAG", "tag(s) that are neither OK/NG nor 1/0 (OK = 1)", bad, raw))
    return tags.astype(object)


def _timestamps(frame: pd.DataFrame, problems: list[Problem]) -> tuple[pd.Series, bool]:
    """Parsed STD_DT and whether it resolves seconds (the real KAMP export keeps minutes only)."""
    raw = frame["STD_DT"]
    text = raw.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy()
    sample = text[~missing].head(1000)
    best, best_count = TIME_FORMATS[0], -1
    for fmt in TIME_FORMATS:
        count = int(pd.to_datetime(sample, format=fmt, errors="coerce").notna().sum())
        if count > best_count:
            best, best_count = fmt, count
        if count == len(sample):
            break
    parsed = pd.to_datetime(text, format=best, errors="coerce")
    problems.append(_problem("STD_DT", "missing timestamp(s)", missing))
    unparsable = parsed.isna().to_numpy() & ~missing
    problems.append(_problem("STD_DT", "timestamp(s) that cannot be parsed", unparsable, raw))
    valid = parsed.dropna()
    fine = bool(len(valid)) and bool(
        (valid.dt.second != 0).any() or (valid.dt.microsecond != 0).any()
    )
    return parsed, fine


def _order(
    frame: pd.DataFrame, stamps: pd.Series | None, fine: bool, problems: list[Problem]
) -> None:
    """Timestamps must not go back; equal ones are duplicates unless stamps are per minute."""
    if stamps is not None and stamps.notna().all():
        ns = stamps.to_numpy().astype("datetime64[ns]").astype(np.int64)
        step = np.diff(ns)
        back = np.r_[False, step < 0]
        problems.append(
            _problem("STD_DT", "timestamp(s) earlier than the row before", back, frame["STD_DT"])
        )
        if fine:
            same = np.r_[False, step == 0]
            problems.append(_problem("STD_DT", "duplicate timestamp(s)", same, frame["STD_DT"]))
            return
    if "NUM" in frame and np.isfinite(frame["NUM"].to_numpy()).all():
        step = np.diff(frame["NUM"].to_numpy())
        problems.append(
            _problem("NUM", "duplicate row number(s)", np.r_[False, step == 0], frame["NUM"])
        )
        problems.append(
            _problem(
                "NUM",
                "row number(s) smaller than the row before",
                np.r_[False, step < 0],
                frame["NUM"],
            )
        )


def load_kamp_csv(
    path_or_buffer: str | Path | IO, require_tag: bool = True, max_rows: int | None = None
) -> pd.DataFrame:
    """A validated melting-tank log: known columns upper-case and in KAMP order, TAG as OK/NG.

    Extra columns are kept after the known ones. `require_tag=False` accepts unlabelled logs
    (for prediction); a TAG column that is present is validated either way. `max_rows` refuses
    longer logs after reading at most one row more (uploads use it).
    """
    source = _source_name(path_or_buffer)
    raw = _read(path_or_buffer, source, max_rows)
    required = REQUIRED if require_tag else tuple(c for c in REQUIRED if c != "TAG")
    frame = _canonical_columns(raw, source, required)
    if frame.empty:
        raise KampFormatError(source, ["the file has a header but no rows"])

    problems: list[Problem | None] = []
    out = pd.DataFrame(index=frame.index)
    stamps, fine = (None, False)
    if "STD_DT" in frame:
        stamps, fine = _timestamps(frame, problems)
        out["STD_DT"] = stamps
    for column in NUMERIC:
        if column in frame:
            out[column] = _numbers(frame, column, problems)
    if "TAG" in frame:
        out["TAG"] = _tags(frame, problems)
    if "NUM" in out and np.isfinite(out["NUM"].to_numpy()).all():
        out["NUM"] = out["NUM"].astype(np.int64)
    _order(out, stamps, fine, problems)
    found = [p for p in problems if p is not None]
    if found:
        raise KampFormatError(source, found)

    extras = [c for c in frame.columns if c not in ORDER]
    result = pd.concat([out[[c for c in ORDER if c in out]], frame[extras]], axis=1)
    result.attrs["source"] = source
    result.attrs["timestamps_resolve_seconds"] = fine
    ng = int((result["TAG"] == "NG").sum()) if "TAG" in result else 0
    log.info("loaded %s: %d rows, %d NG", source, len(result), ng)
    return result

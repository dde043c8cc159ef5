"""From a validated log to model inputs without leakage: time split, scaling, windows, SMOTE.

Each step is a small function so the no-leakage rules can be checked one by one:
the scaler is fitted on training rows only, a window belongs to a split only when all its rows
do (windows across a boundary are dropped), and SMOTE only ever sees training windows.
A window's label is the TAG of its last row: the model judges "now" from the last `window`
readings, which is also how prediction aligns probabilities to timestamps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class WindowingError(ValueError):
    """The log is too short, or the options leave a split without windows."""


def time_split(n_rows: int, val_split: float, test_share: float = 0.0) -> dict[str, range]:
    """Consecutive row ranges: train, then the held-out tail (val, then test), in time order.

    `val_split` is the held-out fraction of all rows (0.3 as in the reference); `test_share`
    is the later part of that tail kept for the final report only (0 = report on val).
    """
    if not 0 < val_split < 1:
        raise WindowingError(f"--val-split must be between 0 and 1, got {val_split}")
    if not 0 <= test_share < 1:
        raise WindowingError(f"--test-share must be in [0, 1), got {test_share}")
    train_stop = int(round(n_rows * (1 - val_split)))
    val_stop = train_stop + int(round((n_rows - train_stop) * (1 - test_share)))
    return {
        "train": range(0, train_stop),
        "val": range(train_stop, val_stop),
        "test": range(val_stop, n_rows),
    }


def window_ends(rows: range, window: int) -> np.ndarray:
    """Last-row indices of the windows lying entirely inside `rows`."""
    return np.arange(rows.start + window - 1, rows.stop, dtype=np.int64)


def fit_minmax(values: np.ndarray) -> dict[str, list[float]]:
    """Per-feature min and max, as plain numbers for run.json."""
    values = np.asarray(values, dtype=np.float64)
    return {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist()}


def apply_minmax(values: np.ndarray, scaler: dict[str, Sequence[float]]) -> np.ndarray:
    """Scale to [0, 1] on the training range (new data may fall outside; it is not clipped)."""
    low = np.asarray(scaler["min"], dtype=np.float64)
    span = np.asarray(scaler["max"], dtype=np.float64) - low
    span[span == 0] = 1.0
    return ((np.asarray(values, dtype=np.float64) - low) / span).astype(np.float32)


def windows_at(scaled: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """(len(ends), window, features) windows ending at `ends`; a copy, safe to hand to SMOTE."""
    view = sliding_window_view(scaled, window, axis=0)  # (n - window + 1, features, window)
    return np.ascontiguousarray(view[ends - window + 1].transpose(0, 2, 1))


def all_windows(scaled: np.ndarray, window: int) -> np.ndarray:
    """Every full window in order, as a view (no copy): row i + window - 1 is window i's last."""
    return sliding_window_view(scaled, window, axis=0).transpose(0, 2, 1)


def smote_balance(
    x: np.ndarray, y: np.ndarray, ratio: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Oversample NG training windows with SMOTE on the flattened windows (train only)."""
    from imblearn.over_sampling import SMOTE

    minority = int(y.sum())
    if minority < 2 or minority >= len(y) - minority:
        log.warning("SMOTE skipped: %d NG of %d training windows", minority, len(y))
        return x, y
    if minority / (len(y) - minority) >= ratio:
        return x, y
    smote = SMOTE(sampling_strategy=ratio, k_neighbors=min(5, minority - 1), random_state=seed)
    flat, y_res = smote.fit_resample(x.reshape(len(x), -1), y)
    return flat.reshape(-1, *x.shape[1:]).astype(np.float32), y_res.astype(np.int8)


@dataclass
class Prepared:
    """Model-ready arrays per split, and everything needed to replay the preprocessing."""

    features: list[str]
    window: int
    scaler: dict[str, list[float]]
    rows: dict[str, range]
    ends: dict[str, np.ndarray]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    smote: dict[str, object] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            s: {"windows": int(len(self.y[s])), "ng": int(self.y[s].sum())}
            for s in SPLITS
            if s in self.y
        }


def ng_labels(frame: pd.DataFrame) -> np.ndarray:
    """1 where TAG is NG (NG is the positive class throughout DefectLens), else 0."""
    return (frame["TAG"].to_numpy() == "NG").astype(np.int8)


def prepare(
    frame: pd.DataFrame,
    features: Sequence[str],
    window: int = 10,
    val_split: float = 0.3,
    test_share: float = 0.0,
    smote: bool = True,
    smote_ratio: float = 1.0,
    seed: int = 0,
) -> Prepared:
    """Split in time, fit the scaler on training rows, cut windows, balance training windows."""
    features = list(features)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise WindowingError(
            f"feature column(s) {', '.join(missing)} not in the log; "
            f"available: {', '.join(map(str, frame.columns))}"
        )
    if window < 1:
        raise WindowingError(f"--window must be at least 1, got {window}")
    rows = time_split(len(frame), val_split, test_share)
    ends = {s: window_ends(r, window) for s, r in rows.items()}
    for split in ("train", "val"):
        if ends[split].size == 0:
            raise WindowingError(
                f"the {split} split ({len(rows[split])} rows) holds no full window of "
                f"{window} rows; use a longer log, a smaller --window or another --val-split"
            )
    values = frame[features].to_numpy(dtype=np.float64)
    scaler = fit_minmax(values[rows["train"].start : rows["train"].stop])
    scaled = apply_minmax(values, scaler)
    labels = ng_labels(frame)
    x = {s: windows_at(scaled, e, window) for s, e in ends.items() if e.size}
    y = {s: labels[e] for s, e in ends.items() if e.size}
    info: dict[str, object] = {"enabled": smote, "ratio": smote_ratio if smote else None}
    if smote:
        before = int(y["train"].sum()), int(len(y["train"]))
        x["train"], y["train"] = smote_balance(x["train"], y["train"], smote_ratio, seed)
        info.update(
            ng_before=before[0],
            windows_before=before[1],
            ng_after=int(y["train"].sum()),
            windows_after=int(len(y["train"])),
        )
    return Prepared(features, window, scaler, rows, ends, x, y, info)

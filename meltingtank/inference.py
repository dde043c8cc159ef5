"""NG probabilities of a melting-tank LSTM run over a KAMP-schema series, with range flags.

Readings outside the range the run's scaler saw in training are still scored, but every
prediction whose window holds one is flagged in `warnings`. `meltingtank/predict.py` is the
command-line shell over `predict_series`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import store
from meltingtank.windowing import all_windows, apply_minmax
from store.thresholds import decide, run_threshold

log = logging.getLogger(__name__)
BATCH_SIZE = 16_384


class PredictionError(ValueError):
    """The run is not an LSTM run, or the log lacks what the run needs."""


def open_lstm_run(run: store.Run | str | Path) -> store.Run:
    loaded = run if isinstance(run, store.Run) else store.load_run(run)
    if loaded.kind != "lstm":
        raise PredictionError(f"run {loaded.name!r} is a {loaded.kind} run; pick an lstm run")
    return loaded.check_complete()


def ng_probabilities(
    model, scaled: np.ndarray, window: int, batch_size: int, progress: bool = False
) -> np.ndarray:
    """Per-row NG probability (NaN before the first full window), batch by batch."""
    out = np.full(len(scaled), np.nan, dtype=np.float32)
    if len(scaled) < window:
        return out
    windows = all_windows(scaled, window)
    step = batch_size * 8
    starts = range(0, len(windows), step)
    for start in tqdm(starts, desc="scoring windows", unit="chunk", disable=not progress):
        chunk = np.ascontiguousarray(windows[start : start + step])
        out[start + window - 1 : start + window - 1 + len(chunk)] = model.predict(
            chunk, batch_size=batch_size, verbose=0
        ).ravel()
    return out


def predict_series(
    run: store.Run | str | Path,
    df: pd.DataFrame,
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
) -> pd.DataFrame:
    """STD_DT/NUM (when present), ng_probability, prediction (NG/OK), window_complete[, TAG]."""
    run = open_lstm_run(run)
    info = run.info
    features, window = list(info["features"]), int(info["window"])
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise PredictionError(
            f"the log lacks column(s) {', '.join(missing)} that run {run.name!r} was trained on"
        )
    if batch_size < 1:
        raise PredictionError(f"batch size must be at least 1, got {batch_size}")
    source = df.attrs.get("source", "the log")
    if len(df) < window:
        raise PredictionError(
            f"{source} has {len(df)} rows, fewer than the {window} readings run {run.name!r} "
            f"needs per prediction; give a log of at least {window} rows"
        )
    scaled = apply_minmax(df[features].to_numpy(dtype=np.float64), info["scaler"])
    prob = ng_probabilities(run.load_model(), scaled, window, batch_size, progress)
    complete = ~np.isnan(prob)
    out = pd.DataFrame(index=df.index)
    for column in ("STD_DT", "NUM"):
        if column in df.columns:
            out[column] = df[column].to_numpy()
    out["ng_probability"] = prob
    threshold = run_threshold(info)
    out["prediction"] = pd.Series(
        np.where(decide(prob, threshold), "NG", "OK"), index=df.index
    ).where(complete)
    out["window_complete"] = complete
    if "TAG" in df.columns:
        out["TAG"] = df["TAG"].to_numpy()
    out["warnings"] = range_warnings(df[features], info["scaler"], window)
    out.attrs.update(run=run.name, threshold=threshold, window=window)
    return out


def range_warnings(values: pd.DataFrame, scaler: dict, window: int) -> list[str]:
    """Per row: the sensors outside the training range (run.json's scaler) in its window.

    Such rows are still scored, but a reading the model never saw (MELT_TEMP 99999 against a
    training maximum of 541) makes the probability meaningless, so the row says so.
    """
    low = np.asarray(scaler["min"], dtype=np.float64)
    high = np.asarray(scaler["max"], dtype=np.float64)
    raw = values.to_numpy(dtype=np.float64)
    outside = (raw < low) | (raw > high)
    notes = [""] * len(values)
    for row in np.flatnonzero(outside.any(axis=1)):
        parts = [
            f"{name} {raw[row, j]:g} outside training range {low[j]:g}..{high[j]:g}"
            for j, name in enumerate(values.columns)
            if outside[row, j]
        ]
        for affected in range(row, min(row + window, len(values))):
            notes[affected] = "; ".join(filter(None, [notes[affected], *parts]))
    return notes

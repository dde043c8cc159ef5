"""NG probability for every reading of a melting-tank log, from a trained LSTM run.

    python meltingtank/predict.py --run RUN --csv FILE --out preds.csv

One output row per input row, aligned to STD_DT: row i is scored from the window ending at i,
so the first `window - 1` rows have no full window (ng_probability empty, window_complete
False). The scaling and window come from run.json; all windows go through the model in large
batches.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import store
from meltingtank.loader import load_kamp_csv
from meltingtank.windowing import all_windows, apply_minmax
from store.cli_errors import check_output_file, cli_main, positive_int, write_csv
from store.thresholds import decide, run_threshold

log = logging.getLogger(__name__)
BATCH_SIZE = 16_384


class PredictionError(ValueError):
    """The run is not an LSTM run, or the log lacks what the run needs."""


def _as_run(run: store.Run | str | Path) -> store.Run:
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
    run = _as_run(run)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="lstm run name (weights/) or folder")
    parser.add_argument("--csv", required=True, type=Path, help="melting-tank log (KAMP schema)")
    parser.add_argument("--out", required=True, type=Path, help="predictions CSV to write")
    parser.add_argument(
        "--batch-size", type=positive_int, default=BATCH_SIZE, help="windows per model call"
    )
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    run = _as_run(args.run)
    check_output_file(args.out)
    frame = load_kamp_csv(args.csv, require_tag=False)
    preds = predict_series(run, frame, batch_size=args.batch_size, progress=True)
    write_csv(preds, args.out, float_format="%.6f")
    flagged = int((preds["prediction"] == "NG").sum())
    outside = int((preds["warnings"] != "").sum())
    print(
        f"wrote {args.out}: {len(preds):,} rows, {flagged:,} predicted NG at threshold "
        f"{preds.attrs['threshold']:.4f} ({int((~preds['window_complete']).sum())} rows before "
        f"the first full window) in {time.perf_counter() - began:.1f} s"
    )
    if outside:
        print(f"warning: {outside:,} rows have sensor values outside the training range")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

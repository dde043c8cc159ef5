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
from store.thresholds import decide, run_threshold

log = logging.getLogger(__name__)
BATCH_SIZE = 16_384


class PredictionError(ValueError):
    """The run is not an LSTM run, or the log lacks what the run needs."""


def _as_run(run: store.Run | str | Path) -> store.Run:
    loaded = run if isinstance(run, store.Run) else store.load_run(run)
    if loaded.kind != "lstm":
        raise PredictionError(f"run {loaded.name!r} is a {loaded.kind} run; pick an lstm run")
    return loaded


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
    out.attrs.update(run=run.name, threshold=threshold, window=window)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="lstm run name (weights/) or folder")
    parser.add_argument("--csv", required=True, type=Path, help="melting-tank log (KAMP schema)")
    parser.add_argument("--out", required=True, type=Path, help="predictions CSV to write")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    return parser


def main(argv: list[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    frame = load_kamp_csv(args.csv, require_tag=False)
    preds = predict_series(args.run, frame, batch_size=args.batch_size, progress=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    preds.to_csv(args.out, index=False, float_format="%.6f")
    flagged = int((preds["prediction"] == "NG").sum())
    print(
        f"wrote {args.out}: {len(preds):,} rows, {flagged:,} predicted NG at threshold "
        f"{preds.attrs['threshold']:.4f} ({int((~preds['window_complete']).sum())} rows before "
        f"the first full window) in {time.perf_counter() - began:.1f} s"
    )
    return args.out


if __name__ == "__main__":
    main()

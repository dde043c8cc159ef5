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

from meltingtank.inference import (
    BATCH_SIZE,
    open_lstm_run,
    predict_series,
)
from meltingtank.loader import load_kamp_csv
from store.cli_errors import check_output_file, cli_main, positive_int, write_csv

log = logging.getLogger(__name__)


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
    run = open_lstm_run(args.run)
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

"""Melting-tank benchmark: generate, write, load and score a full-size log (835,200 rows).

    python benchmarks/melting_predict.py [--run RUN] [--csv FILE] [--rows 835200] [--threads 2]

Times each stage in one process and writes benchmarks/results/melting_predict.json. Without
--run it scores with an untrained network of the default architecture (speed does not depend on
the weights); without --csv it generates the synthetic series first and times that too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "melting_predict.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="lstm run to score with (default: untrained, same shape)")
    parser.add_argument("--csv", type=Path, help="log to score (default: generate one)")
    parser.add_argument("--rows", type=int, default=835_200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    parser.add_argument("--batch-size", type=int, default=16_384)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def _untrained_run(root: Path, frame) -> Path:
    import store
    from meltingtank.network import build_lstm
    from meltingtank.windowing import fit_minmax

    features = ["MELT_TEMP", "MOTORSPEED"]
    run_dir = store.create_run_dir("bench_untrained", root=root)
    build_lstm(10, len(features)).save(run_dir / store.runs.MODEL_FILE)
    scaler = fit_minmax(frame[features].to_numpy())
    store.write_run_info(
        run_dir,
        {"kind": "lstm", "window": 10, "features": features, "scaler": scaler, "threshold": 0.5},
    )
    return run_dir


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from meltingtank.inference import predict_series
    from meltingtank.loader import load_kamp_csv
    from synthetic.melting import generate_series, write_csv

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = args.csv
        if csv is None:
            began = time.perf_counter()
            frame = generate_series(args.rows, args.seed)
            timings["generate_s"] = time.perf_counter() - began
            began = time.perf_counter()
            csv = write_csv(frame, tmp / "melting.csv")
            timings["write_csv_s"] = time.perf_counter() - began
        began = time.perf_counter()
        frame = load_kamp_csv(csv, require_tag=False)
        timings["load_validate_s"] = time.perf_counter() - began
        run = args.run or _untrained_run(tmp / "weights", frame)
        began = time.perf_counter()
        preds = predict_series(run, frame, batch_size=args.batch_size)
        timings["predict_series_s"] = time.perf_counter() - began
        began = time.perf_counter()
        preds.to_csv(tmp / "preds.csv", index=False, float_format="%.6f")
        timings["write_predictions_s"] = time.perf_counter() - began

    rows = len(frame)
    end_to_end = sum(v for k, v in timings.items() if k not in ("generate_s", "write_csv_s"))
    result = {
        "rows": rows,
        "run": str(args.run)
        if args.run
        else "untrained default architecture (window 10, 2 features, LSTM 32)",
        "batch_size": args.batch_size,
        "tf_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
        **{k: round(v, 3) for k, v in timings.items()},
        "load_predict_write_s": round(end_to_end, 3),
        "predict_rows_per_s": round(rows / timings["predict_series_s"]),
        "complete_rows": int(preds["window_complete"].sum()),
    }
    print(f"{'stage':<24}{'seconds':>10}")
    for key, value in timings.items():
        print(f"{key.removesuffix('_s'):<24}{value:>10.2f}")
    print(f"{'load+predict+write':<24}{end_to_end:>10.2f}")
    print(f"{rows:,} rows, {result['predict_rows_per_s']:,} rows/s in predict_series")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

"""Train the melting-tank LSTM on a KAMP-schema CSV, with a window-statistics baseline beside it.

    python meltingtank/train.py --csv data/melting.csv --name melt_lstm [--window 10]
        [--features MELT_TEMP,MOTORSPEED] [--smote/--no-smote] [--epochs 200] [--batch-size 50]
        [--val-split 0.3] [--test-share 0.5] [--threshold f1|recall:0.95] [--wandb]

The reference pipeline: MinMax scaling fitted on training rows, sliding windows, a time-ordered
split, SMOTE on training windows, Adam, binary cross-entropy, EarlyStopping, ModelCheckpoint
(best as model.keras, every epoch under checkpoints/), ReduceLROnPlateau. Validation windows
drive early stopping and the threshold; with --test-share > 0 the latest part of the held-out
tail is scored only once, at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import store
from meltingtank.loader import load_kamp_csv
from meltingtank.thresholds import choose_threshold, evaluate, parse_method
from meltingtank.windowing import Prepared, prepare
from store.cli_args import add_training_options, keyword_options
from store.cli_errors import cli_main
from store.tracking import add_wandb_argument, start_tracking

log = logging.getLogger(__name__)
PREDICT_BATCH = 8192
MONITOR = "val_pr_auc"
# The reference pipeline's settings: many epochs bounded by early stopping, small batches.
TRAINING_DEFAULTS = SimpleNamespace(epochs=200, batch_size=50, lr=1e-3, patience=8, seed=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True, type=Path, help="melting-tank log (KAMP schema)")
    parser.add_argument("--name", required=True, help="run name under weights/")
    parser.add_argument("--window", type=int, default=10, help="readings per window (6 s each)")
    parser.add_argument("--features", default="MELT_TEMP,MOTORSPEED", help="comma-separated")
    parser.add_argument(
        "--smote",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="oversample NG training windows with SMOTE",
    )
    parser.add_argument("--smote-ratio", type=float, default=1.0, help="NG:OK after SMOTE")
    parser.add_argument("--units", type=int, default=32, help="LSTM units")
    parser.add_argument("--val-split", type=float, default=0.3, help="held-out tail of the log")
    parser.add_argument(
        "--test-share",
        type=float,
        default=0.5,
        help="later part of the held-out tail kept for the final report (0: report on val)",
    )
    parser.add_argument(
        "--threshold", default="f1", help="'f1' (best NG F1) or 'recall:0.95' (NG recall target)"
    )
    parser.add_argument(
        "--baseline", default="hgb", choices=["hgb", "logreg", "none"], help="yardstick model"
    )
    add_training_options(parser, TRAINING_DEFAULTS)
    add_wandb_argument(parser)
    return parser


def _callbacks(run_dir: Path, patience: int, tracker) -> list:
    import keras

    (run_dir / "checkpoints").mkdir(exist_ok=True)
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(
            run_dir / store.runs.MODEL_FILE, monitor=MONITOR, mode="max", save_best_only=True
        ),
        keras.callbacks.ModelCheckpoint(run_dir / "checkpoints" / "epoch_{epoch:03d}.keras"),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, patience // 3), min_lr=1e-5
        ),
    ]
    extra = tracker.keras_callback()
    return callbacks + ([extra] if extra is not None else [])


def fit_lstm(data: Prepared, args: argparse.Namespace, run_dir: Path, tracker):
    """Fit on (SMOTE-balanced) training windows, validate on untouched validation windows."""
    import keras

    from meltingtank.network import build_lstm

    keras.utils.set_random_seed(args.seed)
    model = build_lstm(data.window, len(data.features), units=args.units)
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss="binary_crossentropy",
        metrics=[
            keras.metrics.AUC(curve="PR", name="pr_auc"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ],
    )
    history = model.fit(
        data.x["train"],
        data.y["train"].astype(np.float32),
        validation_data=(data.x["val"], data.y["val"].astype(np.float32)),
        validation_batch_size=PREDICT_BATCH,
        epochs=args.epochs,
        batch_size=args.batch_size,
        shuffle=True,
        callbacks=_callbacks(run_dir, args.patience, tracker),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    best_path = run_dir / store.runs.MODEL_FILE
    if best_path.exists():
        model = keras.saving.load_model(best_path, safe_mode=True, compile=False)
    store.save_model(run_dir, model)
    return model, history.history


def _report_split(data: Prepared) -> str:
    return "test" if "test" in data.y and len(data.y["test"]) else "val"


def score_models(
    data: Prepared, prob: dict[str, np.ndarray], method: str, name: str
) -> dict[str, Any]:
    """Threshold from validation windows, metrics on the report split."""
    threshold = choose_threshold(data.y["val"], prob["val"], method)
    split = _report_split(data)
    result = evaluate(data.y[split], prob[split], threshold, method, split)
    result["model"] = name
    return result


def fit_baseline_scores(data: Prepared, kind: str, seed: int) -> dict[str, np.ndarray]:
    """Baseline NG probabilities on val and report windows (trained on unbalanced train)."""
    from meltingtank.baseline import baseline_probabilities, fit_baseline

    x_train, y_train = data.x["train"], data.y["train"]
    if data.smote.get("enabled") and "windows_before" in data.smote:
        # SMOTE appends synthetic windows after the originals: the baseline uses the originals.
        n = int(data.smote["windows_before"])
        x_train, y_train = x_train[:n], y_train[:n]
    model = fit_baseline(kind, x_train, y_train, seed)
    return {s: baseline_probabilities(model, data.x[s]) for s in data.x if s != "train"}


def _row(label: str, scores: dict[str, float], accuracy: float) -> str:
    return (
        f"{label:<22}{scores['precision']:>10.3f}{scores['recall']:>8.3f}"
        f"{accuracy:>10.3f}{scores['f1']:>8.3f}"
    )


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """The reference's table (precision, recall, accuracy, F1), OK and NG positive, at the
    chosen threshold and at 0.5."""
    lines = [
        f"{'model / positive class':<22}{'precision':>10}{'recall':>8}{'accuracy':>10}{'F1':>8}"
    ]
    for name, res in results.items():
        for label, part in ((name, res), (f"{name}@0.5", res["at_0_5"])):
            lines.append(_row(f"{label} / OK", part["ok_positive"], part["accuracy"]))
            lines.append(_row(f"{label} / NG", part["ng_positive"], part["accuracy"]))
    for name, res in results.items():
        lines.append(
            f"{name}: threshold {res['threshold']:.4f} ({res['threshold_method']}), "
            f"confusion [[NG->NG, NG->OK], [OK->NG, OK->OK]] = "
            f"{res['confusion_matrix']['matrix']}, "
            f"AP {res['average_precision'] or float('nan'):.3f}"
        )
    return "\n".join(lines)


def train(args: argparse.Namespace) -> Path:
    """The whole pipeline; returns the run folder."""
    parse_method(args.threshold)
    features = [f.strip().upper() for f in args.features.split(",") if f.strip()]
    began = time.perf_counter()
    frame = load_kamp_csv(args.csv)
    data = prepare(frame, features, **keyword_options(prepare, args))
    print(f"windows per split: {data.counts()}; SMOTE: {data.smote}")
    with store.run_folder(args.name) as run_dir:
        lstm, results = _fit_and_write(args, frame, data, run_dir)
    print(f"\n{summary_table(results)}")
    print(
        f"run {run_dir} ({lstm['split']} windows: {lstm['windows']:,}, "
        f"{lstm['ng_windows']:,} NG) in {time.perf_counter() - began:.0f} s"
    )
    return run_dir


def _fit_and_write(args: argparse.Namespace, frame, data: Prepared, run_dir: Path) -> tuple:
    """Fit the LSTM (and baseline), score the held-out split, write the run (run.json last)."""
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    tracker = start_tracking(args.wandb, run_dir.name, config, run_dir, job_type="train-lstm")
    try:
        model, history = fit_lstm(data, args, run_dir, tracker)
        store.write_history(run_dir, history)
        prob = {
            s: model.predict(data.x[s], batch_size=PREDICT_BATCH, verbose=0).ravel()
            for s in data.x
            if s != "train"
        }
        results = {"lstm": score_models(data, prob, args.threshold, "lstm")}
        if args.baseline != "none":
            base_prob = fit_baseline_scores(data, args.baseline, args.seed)
            results[args.baseline] = score_models(data, base_prob, args.threshold, args.baseline)
        lstm = results["lstm"]
        metrics = {**lstm, "baseline": results.get(args.baseline), "counts": data.counts()}
        store.write_metrics(run_dir, metrics)
        summary = _summary(results)
        store.write_run_info(
            run_dir,
            {
                "kind": "lstm",
                "window": data.window,
                "features": data.features,
                "scaler": {"type": "minmax", **data.scaler},
                "label": {"positive": "NG", "window_label": "TAG of the window's last row"},
                "threshold": lstm["threshold"],
                "threshold_method": args.threshold,
                "model": {"units": args.units, "dropout": 0.2},
                "split": {
                    "val_split": args.val_split,
                    "test_share": args.test_share,
                    "rows": {s: [r.start, r.stop] for s, r in data.rows.items()},
                    "report_split": lstm["split"],
                },
                "smote": data.smote,
                "data": {"csv": str(args.csv), "rows": len(frame), "ng_rows": _ng(frame)},
                "epochs": args.epochs,
                "epochs_run": len(history.get("loss", [])),
                "batch_size": args.batch_size,
                "lr": args.lr,
                "seed": args.seed,
                "baseline": args.baseline,
                "summary": summary,
                "wandb": tracker.info(),
            },
        )
        tracker.summary(summary)
        split = lstm["split"]
        tracker.log_confusion_matrix(
            "confusion_matrix",
            data.y[split].tolist(),
            (prob[split] >= lstm["threshold"]).astype(int).tolist(),
            ["OK", "NG"],
        )
    finally:
        tracker.finish()
    return lstm, results


def _ng(frame) -> int:
    return int((frame["TAG"] == "NG").sum())


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    lstm = results["lstm"]
    summary = {
        "ng_precision": lstm["ng_positive"]["precision"],
        "ng_recall": lstm["ng_positive"]["recall"],
        "ng_f1": lstm["ng_positive"]["f1"],
        "ok_precision": lstm["ok_positive"]["precision"],
        "ok_recall": lstm["ok_positive"]["recall"],
        "ok_f1": lstm["ok_positive"]["f1"],
        "accuracy": lstm["accuracy"],
        "average_precision": lstm["average_precision"],
        "roc_auc": lstm["roc_auc"],
        "report_split": lstm["split"],
    }
    for name, res in results.items():
        if name != "lstm":
            summary[f"baseline_{name}_ng_f1"] = res["ng_positive"]["f1"]
            summary[f"baseline_{name}_ok_f1"] = res["ok_positive"]["f1"]
            summary[f"baseline_{name}_average_precision"] = res["average_precision"]
    return summary


@cli_main
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    train(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

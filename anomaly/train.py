"""Train the autoencoder on good parts, calibrate scoring on held-out good parts, save the run.

python anomaly/train.py --data DIR --name RUN [--img-size 128] [--epochs 30] [--loss mse+ssim]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

import store
from anomaly.evaluate import evaluate_detector
from anomaly.inputs import expand_image_args
from anomaly.model import LOSSES, build_autoencoder, get_loss
from anomaly.normal_set import TrainingSetError, select_training_paths
from anomaly.scoring import (
    STATS_FILE,
    THRESHOLD_METHODS,
    AnomalyDetector,
    ErrorStats,
    ScoreConfig,
    ScoringError,
    error_maps,
    f1_optimal_threshold,
    percentile_threshold,
    smooth,
)
from imaging import Preprocess, discover, load_images
from store.tracking import add_wandb_argument, start_tracking

log = logging.getLogger(__name__)
_MIN_GOOD = 8


@dataclass
class TrainConfig:
    """Everything `python anomaly/train.py` can be told; recorded in run.json."""

    data: str
    name: str
    img_size: int = 128
    epochs: int = 30
    latent_dim: int = 8
    filters: tuple[int, ...] = (16, 32, 64)
    loss: str = "mse+ssim"
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 5
    seed: int = 0
    calib_frac: float = 0.2
    threshold: str = "percentile"
    percentile: float = 99.0
    top_k: float = 0.3
    map: str = "mse"
    sigma: float | None = None
    normalize: bool = True
    part_mask: bool = True
    crop: float = 1.0
    clahe: bool = False
    images: list[str] | None = None
    wandb: bool = False


@dataclass
class GoodSplit:
    """Good images split three ways: learn, per-pixel statistics (and early stopping), threshold."""

    train: list[str]
    stats: list[str]
    threshold: list[str]


def split_good(paths: Sequence[str], calib_frac: float, seed: int) -> GoodSplit:
    """Hold out `calib_frac` of the good images; half for error statistics, half for the threshold.

    The threshold half is never trained on nor used for statistics, so its scores behave like
    those of new good parts.
    """
    if not 0 < calib_frac < 1:
        raise TrainingSetError(f"--calib-frac must be between 0 and 1, got {calib_frac}")
    if len(paths) < _MIN_GOOD:
        raise TrainingSetError(
            f"only {len(paths)} good training images; need at least {_MIN_GOOD} to train and "
            "hold out calibration images"
        )
    order = np.random.default_rng(seed).permutation(len(paths))
    n_calib = max(4, int(round(len(paths) * calib_frac)))
    calib, train = order[:n_calib], order[n_calib:]
    half = len(calib) // 2
    pick = lambda idx: [paths[i] for i in sorted(idx)]  # noqa: E731
    return GoodSplit(train=pick(train), stats=pick(calib[:half]), threshold=pick(calib[half:]))


def _load(paths: Sequence[str], preprocess: Preprocess, what: str) -> np.ndarray:
    x, errors = load_images(list(paths), preprocess)
    if errors:
        listed = "\n  ".join(str(e) for e in errors[:20])
        raise TrainingSetError(
            f"{len(errors)} {what} images cannot be read:\n  {listed}\nfix or remove them"
        )
    return x


def _labelled_for_f1(spec, good_threshold: list[str]) -> tuple[list[str], np.ndarray]:
    """Held-out good parts plus labelled defects that training never saw (val, else train)."""
    items = spec.items
    for split in ("val", "train"):
        defects = items[(items["split"] == split) & items["is_defect"].astype(bool)]
        if not defects.empty:
            break
    else:
        raise ScoringError(
            f"--threshold f1 needs labelled defective images in the train or val split of "
            f"{spec.root}; none found: use --threshold percentile"
        )
    goods = list(good_threshold)
    if split == "val":
        goods += items[(items["split"] == "val") & ~items["is_defect"].astype(bool)][
            "path"
        ].tolist()
    paths = goods + defects["path"].tolist()
    return paths, np.array([False] * len(goods) + [True] * len(defects))


def calibrate(
    detector: AnomalyDetector,
    x_stats: np.ndarray,
    x_threshold: np.ndarray,
    method: str,
    percentile: float,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Fit per-pixel statistics and the threshold in place; returns what run.json records."""
    config = detector.config
    if config.normalize:
        recon = detector.reconstruct(x_stats)
        detector.stats = ErrorStats.fit(
            smooth(error_maps(x_stats, recon, config.map), config.sigma)
        )
    good_scores, _, _ = detector.score_arrays(x_threshold)
    info: dict[str, Any] = {
        "good_scores": {
            "n": len(good_scores),
            "mean": float(np.mean(good_scores)),
            "max": float(np.max(good_scores)),
        }
    }
    if method == "percentile":
        detector.threshold = percentile_threshold(good_scores, percentile)
        info["percentile"] = percentile
    elif method == "f1":
        x_lab, y_lab = labelled
        scores, _, _ = detector.score_arrays(x_lab)
        detector.threshold, f1 = f1_optimal_threshold(scores, y_lab)
        info.update(f1_on_calibration=f1, n_defects=int(y_lab.sum()), n_good=int((~y_lab).sum()))
    else:
        raise ScoringError(f"unknown threshold method {method!r}; choose {THRESHOLD_METHODS}")
    return info


def train(config: TrainConfig) -> Path:
    """Train, calibrate, evaluate (when the data has a test split) and save; returns the run."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    spec = discover(config.data)
    requested = expand_image_args(config.images) if config.images else None
    good = split_good(select_training_paths(spec, requested), config.calib_frac, config.seed)
    preprocess = Preprocess(size=config.img_size, crop=config.crop, clahe=config.clahe)
    sigma = config.sigma if config.sigma is not None else config.img_size / 64
    score_config = ScoreConfig(
        map=config.map,
        sigma=sigma,
        top_k=config.top_k,
        normalize=config.normalize,
        part_mask=config.part_mask,
    )
    labelled = _labelled_for_f1(spec, good.threshold) if config.threshold == "f1" else None
    x_train = _load(good.train, preprocess, "training")
    x_stats = _load(good.stats, preprocess, "calibration")
    x_threshold = _load(good.threshold, preprocess, "calibration")
    if labelled is not None:
        labelled = (_load(labelled[0], preprocess, "labelled calibration"), labelled[1])
    log.info(
        "good images: %d train, %d statistics/early stopping, %d threshold",
        len(x_train),
        len(x_stats),
        len(x_threshold),
    )

    run_dir = store.create_run_dir(config.name)
    tracker = start_tracking(
        config.wandb, run_dir.name, asdict(config), run_dir, job_type="train-autoencoder"
    )
    model = build_autoencoder(config.img_size, config.latent_dim, tuple(config.filters))
    model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=get_loss(config.loss))
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        )
    ]
    epoch_logger = tracker.keras_callback()
    if epoch_logger is not None:
        callbacks.append(epoch_logger)
    history = model.fit(
        x_train,
        x_train,
        validation_data=(x_stats, x_stats),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose="auto",
    )
    model.save(run_dir / "model.keras")
    store.write_history(run_dir, history.history)

    detector = AnomalyDetector(model=model, preprocess=preprocess, config=score_config)
    calibration = calibrate(
        detector, x_stats, x_threshold, config.threshold, config.percentile, labelled
    )
    if detector.stats is not None:
        detector.stats.save(run_dir / STATS_FILE)
    has_test = (spec.items["split"] == "test").any()
    metrics = evaluate_detector(detector, spec, "test") if has_test else {}
    summary = {k: metrics.get(k) for k in ("image_auroc", "pixel_auroc", "f1")}
    epochs_run = len(history.history["loss"])
    info = {
        "kind": "autoencoder",
        "model": "conv_autoencoder",
        "img_size": config.img_size,
        "latent_dim": config.latent_dim,
        "filters": list(config.filters),
        "loss": config.loss,
        "preprocess": preprocess.to_dict(),
        "threshold": detector.threshold,
        "threshold_method": config.threshold,
        "calibration": calibration,
        "score": score_config.to_dict(),
        "normal_class": spec.normal_class,
        "data": {
            "root": str(spec.root),
            "layout": spec.layout,
            "fingerprint": spec.fingerprint(),
            "counts": {
                "train_good": len(good.train),
                "stats_good": len(good.stats),
                "threshold_good": len(good.threshold),
            },
        },
        "seed": config.seed,
        "epochs": config.epochs,
        "epochs_run": epochs_run,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "train_seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "wandb": tracker.info(),
    }
    store.write_run_info(run_dir, info)
    if metrics:
        store.write_metrics(run_dir, metrics)
        tracker.summary({k: v for k, v in summary.items() if v is not None})
    tracker.finish()
    return run_dir


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="", name="")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="data set root (class folders, MVTec or CSV)")
    p.add_argument("--name", required=True, help="run name under weights/")
    p.add_argument(
        "--images",
        nargs="+",
        help="train on exactly these files/folders (each must be a good part of --data)",
    )
    p.add_argument("--img-size", type=int, default=d.img_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--latent-dim", type=int, default=d.latent_dim, help="bottleneck channels")
    p.add_argument(
        "--filters",
        type=lambda text: tuple(int(v) for v in text.split(",")),
        default=d.filters,
        help="encoder widths, comma-separated (each halves the image): e.g. 16,32,64,64",
    )
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--patience", type=int, default=d.patience, help="EarlyStopping patience")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--calib-frac", type=float, default=d.calib_frac, help="good images held out")
    p.add_argument(
        "--threshold",
        choices=THRESHOLD_METHODS,
        default=d.threshold,
        help="percentile of held-out good scores, or F1 optimum over labelled defects",
    )
    p.add_argument("--percentile", type=float, default=d.percentile)
    p.add_argument("--top-k", type=float, default=d.top_k, help="%% of pixels in the score")
    p.add_argument("--map", choices=("mse", "ssim", "mse+ssim"), default=d.map)
    p.add_argument("--sigma", type=float, default=None, help="smoothing (default img_size/64)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false")
    p.add_argument("--no-part-mask", dest="part_mask", action="store_false")
    p.add_argument("--crop", type=float, default=d.crop)
    p.add_argument("--clahe", action="store_true")
    add_wandb_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    config = TrainConfig(**vars(args))
    try:
        run_dir = train(config)
    except (ValueError, store.RunError) as exc:
        print(f"error: {exc}")
        return 2
    run = store.load_run(run_dir)
    s, info = run.info["summary"], run.info
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(
        f"\nrun {run.name} -> {run.path}\n"
        f"  good images: {info['data']['counts']}, epochs run {info['epochs_run']}, "
        f"{info['train_seconds']} s\n"
        f"  threshold {info['threshold']:.4f} ({info['threshold_method']})\n"
        f"  test: image AUROC {fmt(s['image_auroc'])}, pixel AUROC {fmt(s['pixel_auroc'])}, "
        f"F1 {fmt(s['f1'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

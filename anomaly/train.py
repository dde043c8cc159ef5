"""Train the autoencoder on good parts, calibrate scoring on held-out good parts, save the run.

python anomaly/train.py --data DIR --name RUN [--model ae|draem] [--img-size 128] [--epochs 30]

--model ae: a plain convolutional autoencoder; the map is its reconstruction error.
--model draem: DRAEM-lite (reconstructive autoencoder + discriminative U-Net) trained on good
images carrying simulated defects (anomaly.pseudo_defects); the map is the segmented mask.
--model patchcore / padim: patch features of a backbone (--backbone-run CLASSIFIER_RUN, or
--backbone mobilenetv2 --weights imagenet) in a coreset memory bank (nearest-neighbour
distance) or per-position Gaussians (Mahalanobis distance); see anomaly.feature_train.
None ever sees a real defect while learning (a --backbone-run classifier did: run.json says so).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

import store
from anomaly.evaluation import check_masks, evaluate_detector
from anomaly.feature_train import FeatureData, fit_feature_run
from anomaly.features import APPLICATIONS
from anomaly.inputs import expand_image_args
from anomaly.memory import METHODS as FEATURE_MODELS
from anomaly.model import LOSSES, MODELS, build_autoencoder, build_draem, focal_dice_loss, get_loss
from anomaly.normal_set import TrainingSetError, select_training_paths
from anomaly.postprocess import ScoringError, f1_optimal_threshold, part_mask, percentile_threshold
from anomaly.pseudo_defects import PseudoDefectConfig, corrupt_batch
from anomaly.scoring import (
    MAP_KINDS,
    STATS_FILE,
    THRESHOLD_METHODS,
    AnomalyDetector,
    ErrorStats,
    ScoreConfig,
    error_maps,
    smooth,
)
from imaging import Preprocess, discover, load_images
from store.cli_args import add_training_options, option
from store.cli_errors import cli_main, positive_int
from store.tracking import add_wandb_argument, start_tracking

log = logging.getLogger(__name__)
_MIN_GOOD = 8


@dataclass
class TrainConfig:
    """Everything `python anomaly/train.py` can be told; recorded in run.json."""

    data: str
    name: str
    model: str = "ae"
    img_size: int = 128
    epochs: int = 30
    latent_dim: int = 8
    filters: tuple[int, ...] = (16, 32, 64)
    seg_filters: tuple[int, ...] = (16, 32, 64)
    loss: str = "mse+ssim"
    batch_size: int = 16
    steps: int | None = None
    time_limit: float | None = None
    defect_prob: float = 0.8
    max_defects: int = 3
    min_area: float = 0.0004
    max_area: float = 0.02
    lr: float = 1e-3
    patience: int = 5
    seed: int = 0
    calib_frac: float = 0.2
    threshold: str = "percentile"
    percentile: float = 99.0
    top_k: float | None = None
    map: str | None = None
    sigma: float | None = None
    normalize: bool | None = None
    part_mask: bool = True
    crop: float = 1.0
    clahe: bool = False
    images: list[str] | None = None
    wandb: bool = False
    backbone_run: str | None = None
    backbone: str | None = None
    weights: str = "imagenet"
    random_backbone: bool = False
    feature_layers: tuple[str, ...] | None = None
    feature_dim: int = 0
    coreset: float = 2000
    pixel_percentile: float = 99.9


@dataclass
class GoodSplit:
    """Good images split three ways: learn, per-pixel statistics (and early stopping), threshold."""

    train: list[str]
    stats: list[str]
    threshold: list[str]

    def data_record(self, spec) -> dict:
        """run.json's `data`: where the good parts came from and how they were split."""
        return {
            "root": str(spec.root),
            "layout": spec.layout,
            "fingerprint": spec.fingerprint(),
            "counts": {
                "train_good": len(self.train),
                "stats_good": len(self.stats),
                "threshold_good": len(self.threshold),
            },
        }


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


def pseudo_defect_batches(
    x: np.ndarray,
    regions: np.ndarray,
    batch_size: int,
    defects: PseudoDefectConfig,
    seed: int,
):
    """Endless batches of good images (random 90-degree turns and flips) carrying simulated
    defects, as (corrupted, (clean, mask)); batch b is seeded by (seed, b), so runs repeat."""
    for b in itertools.count():
        rng = np.random.default_rng([seed, b])
        pick = rng.integers(0, len(x), batch_size)
        clean, reg = x[pick].copy(), regions[pick].copy()
        for i in range(len(pick)):
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            clean[i], reg[i] = np.rot90(clean[i], k), np.rot90(reg[i], k)
            if flip:
                clean[i], reg[i] = clean[i][:, ::-1], reg[i][:, ::-1]
        corrupted, masks = corrupt_batch(clean, rng, defects, reg)
        yield corrupted, (clean, masks)


def _as_dataset(batches, img_size: int):
    import tensorflow as tf

    spec = tf.TensorSpec((None, img_size, img_size, 1), tf.float32)
    return tf.data.Dataset.from_generator(
        lambda: batches, output_signature=(spec, (spec, spec))
    ).prefetch(2)


class TimeLimit(keras.callbacks.Callback):
    """Stops training after `seconds` of wall time (checked at the end of each epoch)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = time.perf_counter()
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if time.perf_counter() - self.started > self.seconds:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            log.info("time limit of %.0f s reached after epoch %d", self.seconds, epoch + 1)


def _regions(x: np.ndarray) -> np.ndarray:
    return np.stack([part_mask(img) for img in x])


def _fit(config: TrainConfig, x_train: np.ndarray, x_val: np.ndarray, callbacks: list):
    """Build and fit the chosen model; returns (model, keras History)."""
    if config.model == "ae":
        model = build_autoencoder(config.img_size, config.latent_dim, tuple(config.filters))
        model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=get_loss(config.loss))
        history = model.fit(
            x_train,
            x_train,
            validation_data=(x_val, x_val),
            epochs=config.epochs,
            batch_size=config.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose="auto",
        )
        return model, history
    defects = PseudoDefectConfig(
        probability=config.defect_prob,
        min_area=config.min_area,
        max_area=config.max_area,
        max_defects=config.max_defects,
    )
    model = build_draem(
        config.img_size, config.latent_dim, tuple(config.filters), tuple(config.seg_filters)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.lr),
        loss=[get_loss(config.loss), focal_dice_loss],
    )
    steps = config.steps or max(1, int(np.ceil(len(x_train) / config.batch_size)))
    batches = _as_dataset(
        pseudo_defect_batches(x_train, _regions(x_train), config.batch_size, defects, config.seed),
        config.img_size,
    )
    # a fixed validation set: the same simulated defects on held-out good images every epoch
    val_rng = np.random.default_rng([config.seed, 1_000_003])
    x_val_bad, val_masks = corrupt_batch(x_val, val_rng, defects, _regions(x_val))
    history = model.fit(
        batches,
        steps_per_epoch=steps,
        validation_data=(x_val_bad, (x_val, val_masks)),
        epochs=config.epochs,
        callbacks=callbacks,
        verbose="auto",
    )
    return model, history


def _resolve_scoring(config: TrainConfig) -> ScoreConfig:
    """Post-processing defaults per model (chosen on train-split data, see the notes)."""
    draem = config.model == "draem"
    sigma = config.sigma if config.sigma is not None else config.img_size / 64
    map_kind = config.map or ("mask" if draem else "mse")
    if draem and map_kind != "mask":
        raise ScoringError(f"--model draem scores its anomaly mask; --map {map_kind} is for ae")
    if not draem and map_kind == "mask":
        raise ScoringError("--map mask needs --model draem (a plain autoencoder has no mask)")
    normalize = config.normalize if config.normalize is not None else not draem
    top_k = config.top_k if config.top_k is not None else (0.1 if draem else 0.3)
    return ScoreConfig(
        map=map_kind, sigma=sigma, top_k=top_k, normalize=normalize, part_mask=config.part_mask
    )


def train(config: TrainConfig) -> Path:
    """Train, calibrate, evaluate (when the data has a test split) and save; returns the run."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    spec = discover(config.data)
    requested = expand_image_args(config.images) if config.images else None
    good = split_good(select_training_paths(spec, requested), config.calib_frac, config.seed)
    if config.model not in (*MODELS, *FEATURE_MODELS):
        raise ScoringError(
            f"unknown model {config.model!r}; choose one of {', '.join(MODELS + FEATURE_MODELS)}"
        )
    preprocess = Preprocess(size=config.img_size, crop=config.crop, clahe=config.clahe)
    score_config = _resolve_scoring(config)
    if (spec.items["split"] == "test").any():
        check_masks(spec)  # a bad mask must fail now, not after training
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
    if config.model in FEATURE_MODELS:
        data = FeatureData(x_train, x_stats, x_threshold, labelled)
        return fit_feature_run(config, spec, good, preprocess, data)

    with store.run_folder(config.name) as run_dir:
        tracker = start_tracking(
            config.wandb, run_dir.name, asdict(config), run_dir, job_type="train-autoencoder"
        )
        try:
            data = (x_train, x_stats, x_threshold, labelled)
            _train_into(
                run_dir, tracker, config, (spec, good, preprocess, score_config, started), data
            )
        finally:
            tracker.finish()
    return run_dir


def _train_into(run_dir: Path, tracker: Any, config: TrainConfig, setup: tuple, data: tuple):
    """Fit, calibrate, evaluate and write the run folder's files (run.json last)."""
    spec, good, preprocess, score_config, started = setup
    x_train, x_stats, x_threshold, labelled = data
    callbacks: list = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        )
    ]
    if config.time_limit:
        callbacks.append(TimeLimit(config.time_limit))
    epoch_logger = tracker.keras_callback()
    if epoch_logger is not None:
        callbacks.append(epoch_logger)
    fit_started = time.perf_counter()
    model, history = _fit(config, x_train, x_stats, callbacks)
    fit_seconds = time.perf_counter() - fit_started
    store.save_model(run_dir, model)
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
        "model": "draem" if config.model == "draem" else "conv_autoencoder",
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
        "data": good.data_record(spec),
        "seed": config.seed,
        "epochs": config.epochs,
        "epochs_run": epochs_run,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "fit_seconds": round(fit_seconds, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "wandb": tracker.info(),
    }
    if config.model == "draem":
        info["draem"] = {
            "seg_filters": list(config.seg_filters),
            "steps_per_epoch": config.steps,
            "pseudo_defects": {
                "probability": config.defect_prob,
                "max_defects": config.max_defects,
                "min_area": config.min_area,
                "max_area": config.max_area,
            },
        }
    store.write_run_info(run_dir, info)
    if metrics:
        store.write_metrics(run_dir, metrics)
        tracker.summary({k: v for k, v in summary.items() if v is not None})


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


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
    option(
        p,
        d,
        "--model",
        "ae: plain autoencoder; draem: autoencoder + segmentation net on simulated defects;"
        "\npatchcore: coreset memory bank of patch features; padim: per-position Gaussians",
        choices=(*MODELS, *FEATURE_MODELS),
    )
    _add_feature_options(p, d)
    option(p, d, "--img-size", type=positive_int)
    option(p, d, "--latent-dim", "bottleneck channels", type=int)
    help_filters = "encoder widths, comma-separated (each halves the image): e.g. 16,32,64,64"
    option(p, d, "--filters", help_filters, type=_ints)
    help_seg = "draem: U-Net widths of the discriminative network, comma-separated"
    option(p, d, "--seg-filters", help_seg, type=_ints)
    option(p, d, "--steps", "draem: batches per epoch", type=int)
    option(p, d, "--time-limit", "stop after this many seconds of training", type=float)
    option(p, d, "--defect-prob", "draem", type=float)
    option(p, d, "--max-defects", "draem: per image", type=int)
    for flag in ("--min-area", "--max-area"):
        option(p, d, flag, "draem: pseudo-defect", type=float)
    option(p, d, "--loss", choices=LOSSES)
    add_training_options(p, d)
    _add_scoring_options(p, d)
    add_wandb_argument(p)
    return p


def _add_feature_options(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The options of --model patchcore/padim (features of a backbone)."""
    p.add_argument(
        "--backbone-run",
        help="patchcore/padim: classifier run whose conv layers give the features (recorded)",
    )
    p.add_argument(
        "--backbone",
        choices=sorted(APPLICATIONS),
        help="patchcore/padim: a keras.applications network instead (needs --weights imagenet)",
    )
    help_weights = "weights of --backbone (downloaded by Keras: needs internet once)"
    option(p, d, "--weights", help_weights, choices=("imagenet",))
    p.add_argument(
        "--random-backbone",
        action="store_true",
        help="patchcore/padim: --backbone-run's architecture, freshly initialised (a baseline)",
    )
    option(
        p,
        d,
        "--feature-layers",
        "patchcore/padim: backbone layers, comma-separated (default: two mid layers)",
        type=lambda text: tuple(v for v in text.split(",") if v),
    )
    help_dim = "patchcore/padim: project features onto this many principal components (0: keep)"
    option(p, d, "--feature-dim", help_dim, type=int)
    help_coreset = "patchcore: memory bank size (rows), or a fraction of all patches if < 1"
    option(p, d, "--coreset", help_coreset, type=float)
    help_pixel = "patchcore/padim: pixel threshold = this percentile of good parts' map values"
    option(p, d, "--pixel-percentile", help_pixel, type=float)


def _add_scoring_options(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """Calibration on held-out good parts and the post-processing of the anomaly map."""
    option(p, d, "--calib-frac", "good images held out", type=float)
    help_threshold = "percentile of held-out good scores, or F1 optimum over labelled defects"
    option(p, d, "--threshold", help_threshold, choices=THRESHOLD_METHODS)
    option(p, d, "--percentile", type=float)
    option(p, d, "--top-k", "%% of pixels in the score (ae 0.3, draem 0.1)", type=float)
    option(p, d, "--map", "ae: mse (default), ssim, mse+ssim; draem: mask", choices=MAP_KINDS)
    option(p, d, "--sigma", "smoothing (default img_size/64)", type=float)
    p.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        default=None,
        help="skip per-pixel normalisation (on by default for ae, off for draem)",
    )
    p.add_argument("--no-part-mask", dest="part_mask", action="store_false")
    option(p, d, "--crop", type=float)
    p.add_argument("--clahe", action="store_true")


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    config = TrainConfig(**vars(args))
    run_dir = train(config)
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

"""Fitting autoencoder and DRAEM runs (`anomaly/train.py --model ae|draem`): the network, its
fit on good parts (DRAEM's on simulated defects), calibration, evaluation and the run folder.
PatchCore and PaDiM runs are anomaly.feature_train."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

import store
from anomaly.calibration import calibrate
from anomaly.draem_batches import as_dataset, part_regions, pseudo_defect_batches
from anomaly.evaluation import evaluate_detector
from anomaly.model import build_autoencoder, build_draem, focal_dice_loss, get_loss
from anomaly.postprocess import ScoringError
from anomaly.pseudo_defects import PseudoDefectConfig, corrupt_batch
from anomaly.scoring import STATS_FILE, AnomalyDetector, ScoreConfig

log = logging.getLogger(__name__)


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


def _fit(config: Any, x_train: np.ndarray, x_val: np.ndarray, callbacks: list):
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
    batches = as_dataset(
        pseudo_defect_batches(
            x_train, part_regions(x_train), config.batch_size, defects, config.seed
        ),
        config.img_size,
    )
    # a fixed validation set: the same simulated defects on held-out good images every epoch
    val_rng = np.random.default_rng([config.seed, 1_000_003])
    x_val_bad, val_masks = corrupt_batch(x_val, val_rng, defects, part_regions(x_val))
    history = model.fit(
        batches,
        steps_per_epoch=steps,
        validation_data=(x_val_bad, (x_val, val_masks)),
        epochs=config.epochs,
        callbacks=callbacks,
        verbose="auto",
    )
    return model, history


def resolve_scoring(config: Any) -> ScoreConfig:
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


def fit_autoencoder_run(run_dir: Path, tracker: Any, config: Any, setup: tuple, data: tuple):
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

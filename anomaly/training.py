"""Training an anomaly detector on good parts: the config `python anomaly/train.py` fills, and
`train`, which loads and splits the good images and hands them to the model family's fitting
(anomaly.autoencoder_train for ae/draem, anomaly.feature_train for patchcore/padim)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras

import store
from anomaly.autoencoder_train import fit_autoencoder_run, resolve_scoring
from anomaly.calibration import labelled_for_f1, load_good, split_good
from anomaly.evaluation import check_masks
from anomaly.feature_train import FeatureData, fit_feature_run
from anomaly.inputs import expand_image_args
from anomaly.memory import METHODS as FEATURE_MODELS
from anomaly.model import MODELS
from anomaly.normal_set import select_training_paths
from anomaly.postprocess import ScoringError
from imaging import Preprocess, discover
from imaging.preprocess import COLORS
from store.tracking import start_tracking

log = logging.getLogger(__name__)


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
    color: str | None = None
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


def _color(config: TrainConfig) -> str:
    """The colour mode: --color, else the backbone run's (a colour classifier gives colour
    features), else gray. The autoencoders read gray only."""
    color = config.color
    if color is None:
        color = "gray"
        if config.backbone_run and config.model in FEATURE_MODELS:
            color = store.load_run(config.backbone_run).info.get("color") or "gray"
    if color not in COLORS:
        raise ScoringError(f"--color {color!r}: choose one of {', '.join(COLORS)}")
    if color == "rgb" and config.model not in FEATURE_MODELS:
        raise ScoringError(
            f"--color rgb: the {config.model} model reads gray images; use --model patchcore or "
            "padim for colour parts (their features keep all three channels)"
        )
    return color


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
    preprocess = Preprocess(
        size=config.img_size, crop=config.crop, clahe=config.clahe, color=_color(config)
    )
    score_config = resolve_scoring(config)
    if (spec.items["split"] == "test").any():
        check_masks(spec)  # a bad mask must fail now, not after training
    labelled = labelled_for_f1(spec, good.threshold) if config.threshold == "f1" else None
    x_train = load_good(good.train, preprocess, "training")
    x_stats = load_good(good.stats, preprocess, "calibration")
    x_threshold = load_good(good.threshold, preprocess, "calibration")
    if labelled is not None:
        labelled = (load_good(labelled[0], preprocess, "labelled calibration"), labelled[1])
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
            fit_autoencoder_run(
                run_dir, tracker, config, (spec, good, preprocess, score_config, started), data
            )
        finally:
            tracker.finish()
    return run_dir

"""Post-processing, separate from the model: error maps, image scores and thresholds.

Pipeline per image, at model resolution: reconstruction error (squared error and/or 1 - SSIM),
or for DRAEM runs (map "mask") the discriminative network's anomaly mask -> Gaussian smoothing
-> optional normalisation by the per-pixel mean and spread of good parts (so places that are
always hard to rebuild, like vane edges, stop dominating) -> optional part mask (background
clutter cannot raise an alarm) -> image score = mean of the top-k % pixels.
The decision rule everywhere is `score >= threshold` -> anomalous (store.thresholds.decide).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from anomaly.postprocess import (
    ScoringError,
    as_stack,
    is_anomalous,
    part_region,
    top_k_mean,
)

log = logging.getLogger(__name__)

MAP_KINDS = ("mse", "ssim", "mse+ssim", "mask")
ERROR_KINDS = ("mse", "ssim", "mse+ssim")
THRESHOLD_METHODS = ("percentile", "f1")
STATS_FILE = "error_stats.npy"
SCORE_NAME = "top_k_mean"
_MSE_WEIGHT = 10.0  # same balance as the mse+ssim training loss


@dataclass
class ScoreConfig:
    """How a reconstruction becomes a map and a score; stored in run.json under "score"."""

    map: str = "mse+ssim"
    sigma: float = 2.0
    top_k: float = 1.0
    normalize: bool = True
    part_mask: bool = True

    def __post_init__(self) -> None:
        if self.map not in MAP_KINDS:
            raise ScoringError(f"unknown map kind {self.map!r}; choose one of {MAP_KINDS}")
        if not 0 < self.top_k <= 100:
            raise ScoringError(f"top_k is a percentage of pixels in (0, 100], got {self.top_k}")
        if self.sigma < 0:
            raise ScoringError(f"sigma must be >= 0, got {self.sigma}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": SCORE_NAME, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM of two images in [0, 1] (Gaussian window, as tf.image.ssim)."""
    c1, c2 = 0.01**2, 0.03**2

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (11, 11), sigma, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).astype(np.float32)


def error_maps(images: np.ndarray, recon: np.ndarray, kind: str = "mse+ssim") -> np.ndarray:
    """Raw per-pixel reconstruction error, (N, S, S) float32."""
    x, r = as_stack(images), as_stack(recon)
    if x.shape != r.shape:
        raise ScoringError(f"images {x.shape} and reconstructions {r.shape} differ in shape")
    if kind not in ERROR_KINDS:
        raise ScoringError(f"unknown error map kind {kind!r}; choose one of {ERROR_KINDS}")
    out = np.zeros_like(x)
    if kind in ("mse", "mse+ssim"):
        weight = _MSE_WEIGHT if kind == "mse+ssim" else 1.0
        out += weight * np.square(x - r)
    if kind in ("ssim", "mse+ssim"):
        out += np.stack([1.0 - ssim_map(a, b) for a, b in zip(x, r, strict=True)])
    return out


def smooth(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing: single-pixel noise is not a defect, a blob of error is."""
    maps = as_stack(maps)
    if sigma <= 0:
        return maps
    return np.stack(
        [cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for m in maps]
    )


@dataclass
class ErrorStats:
    """Per-pixel mean and spread of smoothed error maps of good parts (model resolution)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, maps: np.ndarray) -> ErrorStats:
        maps = as_stack(maps)
        if len(maps) < 2:
            raise ScoringError(f"per-pixel statistics need at least 2 good images, got {len(maps)}")
        std = maps.std(axis=0)
        # a floor keeps pixels that never vary (flat background) from exploding
        floor = max(float(np.median(std)) * 0.25, 1e-6)
        return cls(mean=maps.mean(axis=0), std=np.maximum(std, floor).astype(np.float32))

    def normalize(self, maps: np.ndarray) -> np.ndarray:
        maps = as_stack(maps)
        if maps.shape[1:] != self.mean.shape:
            raise ScoringError(f"maps {maps.shape[1:]} do not match statistics {self.mean.shape}")
        return np.maximum((maps - self.mean) / self.std, 0.0).astype(np.float32)

    def save(self, path: Path) -> None:
        np.save(path, np.stack([self.mean, self.std]).astype(np.float32), allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> ErrorStats:
        data = np.load(path, allow_pickle=False)
        if data.ndim != 3 or data.shape[0] != 2:
            raise ScoringError(f"{path} should hold (2, S, S) mean/std maps, found {data.shape}")
        return cls(mean=data[0], std=data[1])


def anomaly_maps(
    images: np.ndarray,
    recon: np.ndarray,
    config: ScoreConfig,
    stats: ErrorStats | None = None,
    masks: np.ndarray | None = None,
) -> np.ndarray:
    """Final anomaly maps (N, S, S): error (or DRAEM mask) -> smoothing -> normalisation ->
    part mask."""
    x = as_stack(images)
    if config.map == "mask":
        if masks is None:
            raise ScoringError(
                "map kind 'mask' scores a DRAEM model's anomaly mask, but none was given; "
                "use AnomalyDetector.score_arrays, which runs the model"
            )
        masks = as_stack(masks)
        if masks.shape != x.shape:
            raise ScoringError(f"images {x.shape} and masks {masks.shape} differ in shape")
        maps = smooth(masks, config.sigma)
    else:
        maps = smooth(error_maps(x, recon, config.map), config.sigma)
    if config.normalize:
        if stats is None:
            raise ScoringError("config.normalize is on but no per-pixel ErrorStats were given")
        maps = stats.normalize(maps)
    if config.part_mask:
        maps = maps * np.stack([part_region(img) for img in x])
    return maps.astype(np.float32)


@dataclass
class AnomalyDetector:
    """A trained autoencoder (plain or DRAEM) plus the post-processing a run recorded.

    A DRAEM model has two outputs (reconstruction, anomaly mask); a plain one only the first.
    """

    model: Any
    preprocess: Any
    config: ScoreConfig
    stats: ErrorStats | None = None
    threshold: float | None = None
    batch_size: int = 32
    pixel_threshold: float | None = None

    @classmethod
    def from_run(cls, run: Any) -> Any:
        """Rebuild from a run (name, path or store.Run) of kind "autoencoder" (anomaly runs).

        PatchCore and PaDiM runs open as `anomaly.feature_detector.FeatureDetector`, which
        offers the same interface.
        """
        import store
        from imaging import Preprocess

        if not isinstance(run, store.Run):
            run = store.load_run(run)
        if run.kind != "autoencoder":
            raise ScoringError(f"run {run.name!r} is a {run.kind} run; pick an autoencoder run")
        run.check_complete()
        if run.info.get("model") in ("patchcore", "padim"):
            from anomaly.feature_detector import FeatureDetector

            return FeatureDetector.from_run(run)
        config = ScoreConfig.from_dict(run.info.get("score", {}))
        stats = None
        if config.normalize:
            path = run.path / STATS_FILE
            if not path.exists():
                raise ScoringError(f"run {run.name!r} normalises maps but has no {STATS_FILE}")
            stats = ErrorStats.load(path)
        return cls(
            model=run.load_model(),
            preprocess=Preprocess.from_dict(run.info["preprocess"]),
            config=config,
            stats=stats,
            threshold=run.info.get("threshold"),
            pixel_threshold=run.info.get("pixel_threshold"),
        )

    @property
    def is_draem(self) -> bool:
        return len(getattr(self.model, "outputs", None) or [None]) == 2

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(reconstructions (N, S, S), DRAEM anomaly masks (N, S, S) or None) of prepared
        images (N, S, S, 1) in [0, 1]."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        recons, masks = [], []
        # the compiled predict step (faster on CPU than an eager call, see inspection/)
        for i in range(0, len(x), self.batch_size):
            out = self.model.predict_on_batch(x[i : i + self.batch_size])
            if isinstance(out, (list, tuple)):
                recons.append(np.asarray(out[0])[..., 0])
                masks.append(np.asarray(out[1])[..., 0])
            else:
                recons.append(np.asarray(out)[..., 0])
        if not recons:
            empty = np.zeros(x.shape[:3], np.float32)
            return empty, (empty.copy() if self.is_draem else None)
        return np.concatenate(recons), (np.concatenate(masks) if masks else None)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Reconstructions (N, S, S) of prepared images (N, S, S, 1) in [0, 1]."""
        return self.predict(x)[0]

    def score_arrays(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores (N,), maps (N, S, S), reconstructions (N, S, S)) for prepared images."""
        recon, masks = self.predict(x)
        maps = anomaly_maps(x, recon, self.config, self.stats, masks)
        return top_k_mean(maps, self.config.top_k), maps, recon

    def decide(self, scores: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise ScoringError("this run has no threshold; retrain or calibrate one")
        return is_anomalous(scores, self.threshold)

    def boxes(self, amap: np.ndarray) -> list:
        """Predicted defect regions of one map (model resolution); none without a recorded
        pixel threshold (runs trained before localization)."""
        if self.pixel_threshold is None:
            return []
        from anomaly.localize import mask_to_boxes, predicted_mask

        return mask_to_boxes(predicted_mask(amap, self.pixel_threshold), amap, min_area=4)


def score_images(
    run: Any, images: Sequence[Any]
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Score images (arrays, paths or bytes) with a run, for the app and batch prediction.

    Returns scores (N,), one anomaly map per image at that image's original size (a list, since
    sizes may differ; each float32 (H, W)) and the reconstructions (N, S, S) at model size.
    Unreadable inputs raise imaging.ImageError naming the file.
    """
    from imaging import read_image

    detector = run if hasattr(run, "score_arrays") else AnomalyDetector.from_run(run)
    decoded = [img if isinstance(img, np.ndarray) else read_image(img) for img in images]
    if not decoded:
        return np.zeros(0), [], np.zeros((0, *detector.preprocess.shape), np.float32)
    x = detector.preprocess.apply_batch(decoded)
    scores, maps, recon = detector.score_arrays(x)
    originals = [
        detector.preprocess.cam_to_original(m, img.shape[:2]).astype(np.float32)
        for m, img in zip(maps, decoded, strict=True)
    ]
    return scores, originals, recon

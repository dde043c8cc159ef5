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

from store.thresholds import decide

log = logging.getLogger(__name__)

MAP_KINDS = ("mse", "ssim", "mse+ssim", "mask")
ERROR_KINDS = ("mse", "ssim", "mse+ssim")
THRESHOLD_METHODS = ("percentile", "f1")
STATS_FILE = "error_stats.npy"
SCORE_NAME = "top_k_mean"
_MSE_WEIGHT = 10.0  # same balance as the mse+ssim training loss


class ScoringError(ValueError):
    """Inputs to scoring or threshold calibration are unusable."""


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


def _as_stack(x: np.ndarray) -> np.ndarray:
    """(N, S, S) float32 from (N, S, S) or (N, S, S, 1)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise ScoringError(f"expected images shaped (N, H, W) or (N, H, W, 1), got {x.shape}")
    return x


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
    x, r = _as_stack(images), _as_stack(recon)
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
    maps = _as_stack(maps)
    if sigma <= 0:
        return maps
    return np.stack(
        [cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for m in maps]
    )


def part_mask(
    image: np.ndarray,
    min_frac: float = 0.05,
    max_frac: float = 0.95,
    min_separability: float = 0.8,
) -> np.ndarray:
    """Bool mask of the part (largest bright region, convex hull, slightly dilated).

    The hull keeps bites out of the rim (edge chips) inside; the dilation keeps protrusions
    (burrs). Images without a distinct part (textures, close-ups) get an all-true mask.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[..., 0]
    u8 = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(u8, (5, 5), 0)
    level, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    full = np.ones(img.shape, dtype=bool)
    fg = binary > 0
    if fg.all() or not fg.any():
        return full
    # Otsu's separability (between-class / total variance) tells a part on a background
    # (two modes) from a texture (one mode)
    values = blurred.astype(np.float64)
    between = fg.mean() * (1 - fg.mean()) * (values[fg].mean() - values[~fg].mean()) ** 2
    if between < min_separability * max(values.var(), 1e-9):
        return full
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n < 2:
        return full
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    frac = stats[largest, cv2.CC_STAT_AREA] / img.size
    if not min_frac <= frac <= max_frac:
        return full
    points = cv2.findNonZero((labels == largest).astype(np.uint8))
    hull = cv2.convexHull(points)
    mask = np.zeros(img.shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    radius = max(1, img.shape[0] // 32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask, kernel).astype(bool)


@dataclass
class ErrorStats:
    """Per-pixel mean and spread of smoothed error maps of good parts (model resolution)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, maps: np.ndarray) -> ErrorStats:
        maps = _as_stack(maps)
        if len(maps) < 2:
            raise ScoringError(f"per-pixel statistics need at least 2 good images, got {len(maps)}")
        std = maps.std(axis=0)
        # a floor keeps pixels that never vary (flat background) from exploding
        floor = max(float(np.median(std)) * 0.25, 1e-6)
        return cls(mean=maps.mean(axis=0), std=np.maximum(std, floor).astype(np.float32))

    def normalize(self, maps: np.ndarray) -> np.ndarray:
        maps = _as_stack(maps)
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
    x = _as_stack(images)
    if config.map == "mask":
        if masks is None:
            raise ScoringError(
                "map kind 'mask' scores a DRAEM model's anomaly mask, but none was given; "
                "use AnomalyDetector.score_arrays, which runs the model"
            )
        masks = _as_stack(masks)
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
        maps = maps * np.stack([part_mask(img) for img in x])
    return maps.astype(np.float32)


def top_k_mean(maps: np.ndarray, top_k: float) -> np.ndarray:
    """Image scores: mean of the top `top_k` percent of each map's pixels (at least one)."""
    maps = _as_stack(maps)
    if not 0 < top_k <= 100:
        raise ScoringError(f"top_k is a percentage of pixels in (0, 100], got {top_k}")
    flat = maps.reshape(len(maps), -1)
    k = max(1, int(round(flat.shape[1] * top_k / 100.0)))
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1)


def percentile_threshold(good_scores: Sequence[float], q: float = 99.0) -> float:
    """Threshold from held-out good parts: about (100 - q) % of them will be flagged."""
    scores = np.asarray(good_scores, dtype=np.float64)
    if scores.size == 0:
        raise ScoringError("percentile threshold needs held-out good scores; got none")
    if not 0 < q <= 100:
        raise ScoringError(f"percentile must be in (0, 100], got {q}")
    return float(np.percentile(scores, q))


def f1_optimal_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of `score >= threshold` with defects as positives.

    The threshold lies halfway between neighbouring scores so that the rule is stable.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ScoringError(f"scores {s.shape} and labels {y.shape} must be equal-length vectors")
    if y.all() or not y.any():
        raise ScoringError("the F1 threshold needs both good and defective labelled images")
    values = np.unique(s)[::-1]  # descending candidate cut points
    below = np.append(values[1:], values[-1] - 1.0)
    cuts = (values + below) / 2.0  # flag everything >= values[i]
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    f1s = []
    for cut in cuts:
        flagged = decide(s_sorted, cut)
        tp = int(np.sum(flagged & y_sorted))
        fp = int(np.sum(flagged & ~y_sorted))
        fn = int(np.sum(~flagged & y_sorted))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    best = int(np.argmax(f1s))
    return float(cuts[best]), float(f1s[best])


def is_anomalous(scores: Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """The decision rule of every run: a score at or above the threshold means anomalous."""
    return decide(scores, threshold)


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
        size = detector.preprocess.size
        return np.zeros(0), [], np.zeros((0, size, size), np.float32)
    x = detector.preprocess.apply_batch(decoded)
    scores, maps, recon = detector.score_arrays(x)
    originals = [
        detector.preprocess.cam_to_original(m, img.shape[:2]).astype(np.float32)
        for m, img in zip(maps, decoded, strict=True)
    ]
    return scores, originals, recon

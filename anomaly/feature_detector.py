"""PatchCore / PaDiM runs at inference: features -> patch distances -> map, score, mask, boxes.

`FeatureDetector` has the interface of `anomaly.scoring.AnomalyDetector` (preprocess,
threshold, score_arrays, decide), so evaluation, batch prediction, the inspection pipeline and
the app use either kind unchanged; `AnomalyDetector.from_run` opens the right one. Per image,
at model resolution: patch distances (h, w) -> bilinear upsampling to (S, S) -> Gaussian
smoothing -> optional part mask. Image score ("patch_max", PatchCore's): the largest patch
distance; or ("top_k") the mean of the top-k % pixels of the map. The decision rule is that of
every run (`anomaly.scoring.is_anomalous`); pixels at or above `pixel_threshold` form the
predicted mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from anomaly.features import extract
from anomaly.localize import RegionBox, mask_to_boxes, predicted_mask
from anomaly.memory import METHODS, score_padim, score_patchcore
from anomaly.postprocess import ScoringError, is_anomalous, part_region, top_k_mean

BANK = "memory_bank"
PADIM_MEAN = "padim_mean"
PADIM_INV_COV = "padim_inv_cov"
IMAGE_SCORES = ("patch_max", "top_k")


# OpenCV 5 refuses more channels than this in one resize (CV_CN_MAX)
_CV_CHANNELS = 128


def gray_images(x: np.ndarray) -> np.ndarray:
    """(N, S, S) gray images of prepared (N, S, S), (N, S, S, 1) or RGB (N, S, S, 3) ones: the
    part mask and the returned images are gray whatever the model reads."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        return x[..., 0] if x.shape[-1] == 1 else x.mean(axis=-1)
    return x


@dataclass
class FeatureScoreConfig:
    """How patch distances become a map and a score; run.json "score"."""

    sigma: float = 2.0
    top_k: float = 0.1
    part_mask: bool = True
    min_box_area: int = 4
    image_score: str = "patch_max"

    def __post_init__(self) -> None:
        if self.image_score not in IMAGE_SCORES:
            raise ScoringError(f"unknown image score {self.image_score!r}; use {IMAGE_SCORES}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.image_score, "map": "patch_distance", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScoreConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class FeatureDetector:
    """A patch-feature extractor plus PatchCore's bank or PaDiM's Gaussians."""

    model: Any
    method: str
    preprocess: Any
    arrays: dict[str, np.ndarray]
    config: FeatureScoreConfig
    threshold: float | None = None
    pixel_threshold: float | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ScoringError(f"unknown detector {self.method!r}; choose one of {METHODS}")

    @classmethod
    def from_run(cls, run: Any) -> FeatureDetector:
        from imaging import Preprocess

        info = run.info
        method = info.get("model")
        names = (BANK,) if method == "patchcore" else (PADIM_MEAN, PADIM_INV_COV)
        return cls(
            model=run.load_model(),
            method=method,
            preprocess=Preprocess.from_dict(info["preprocess"]),
            arrays={n: run.load_array(n) for n in names},
            config=FeatureScoreConfig.from_dict(info.get("score", {})),
            threshold=info.get("threshold"),
            pixel_threshold=info.get("pixel_threshold"),
        )

    def patch_maps(self, x: np.ndarray) -> np.ndarray:
        """Patch-level anomaly maps (N, h, w) of prepared images (N, S, S, C)."""
        return self.patch_maps_of_features(extract(self.model, x, self.batch_size))

    def patch_maps_of_features(self, feats: np.ndarray) -> np.ndarray:
        """Patch-level anomaly maps (N, h, w) of the extractor's output features (N, h, w, D)."""
        if self.method == "patchcore":
            return score_patchcore(feats, self.arrays[BANK])
        return score_padim(feats, self.arrays[PADIM_MEAN], self.arrays[PADIM_INV_COV])

    def backbone_layers(self) -> tuple[str, ...]:
        """The backbone layers the extractor reads its patch features from (in order)."""
        names = (layer.name for layer in self.model.layers)
        return tuple(name.removeprefix("agg_") for name in names if name.startswith("agg_"))

    def head_model(self) -> Any:
        """The extractor after its backbone: backbone layer outputs -> patch features (the
        local aggregation, pooling and projection), for a caller that computed the backbone
        layers itself (inspection's shared pass)."""
        import keras

        inputs = [self.model.get_layer(name).output for name in self.backbone_layers()]
        return keras.Model(inputs, self.model.output, name="patch_feature_head")

    def score_patches(
        self, x: np.ndarray, features: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(image scores (N,), patch maps (N, h, w)): enough to decide, without the full maps
        (which `maps_from_patches` makes only where they are needed, e.g. flagged parts).
        `features`: the extractor's output for `x` when the caller already has it."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros(0), np.zeros((0, 1, 1), np.float32)
        patch = self.patch_maps(x) if features is None else self.patch_maps_of_features(features)
        if self.config.image_score == "patch_max":
            return patch.reshape(len(patch), -1).max(axis=1).astype(np.float64), patch
        return top_k_mean(self.maps_from_patches(patch, x), self.config.top_k), patch

    def maps_from_patches(self, patch: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Anomaly maps (N, S, S) from patch maps and the prepared images they came from."""
        x = np.asarray(x, dtype=np.float32)
        images = gray_images(x)
        size = images.shape[1:3]
        out = np.empty((len(patch), *size), np.float32)
        # cv2 resizes and blurs many channels at once (OpenCV 5: at most 128): one call per chunk
        for i in range(0, len(patch), _CV_CHANNELS):
            chunk = np.ascontiguousarray(
                np.asarray(patch[i : i + _CV_CHANNELS], np.float32).transpose(1, 2, 0)
            )
            up = cv2.resize(chunk, size[::-1], interpolation=cv2.INTER_LINEAR)
            if self.config.sigma > 0:
                up = cv2.GaussianBlur(up, (0, 0), self.config.sigma, borderType=cv2.BORDER_REFLECT)
            out[i : i + _CV_CHANNELS] = up.reshape(*size, -1).transpose(2, 0, 1)
        if self.config.part_mask:
            out *= np.stack([part_region(img) for img in images])
        return out

    def score_arrays(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores (N,), maps (N, S, S), the prepared images (N, S, S)): no reconstruction here,
        the third item keeps the autoencoder's signature."""
        x = np.asarray(x, dtype=np.float32)
        images = gray_images(x)
        if len(images) == 0:
            return np.zeros(0), np.zeros((0, *images.shape[1:3]), np.float32), images
        scores, patch = self.score_patches(x)
        return scores, self.maps_from_patches(patch, x), images

    def decide(self, scores: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise ScoringError("this run has no threshold; retrain or calibrate one")
        return is_anomalous(scores, self.threshold)

    def boxes(self, amap: np.ndarray) -> list[RegionBox]:
        """Predicted defect regions of one map (model resolution), hottest first."""
        if self.pixel_threshold is None:
            return []
        mask = predicted_mask(amap, self.pixel_threshold)
        return mask_to_boxes(mask, amap, self.config.min_box_area)

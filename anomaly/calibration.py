"""Calibrating an anomaly detector on good parts it never trained on: the three-way split of the
good images, the labelled set of --threshold f1, and the per-pixel statistics and threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomaly.normal_set import TrainingSetError
from anomaly.postprocess import ScoringError, f1_optimal_threshold, percentile_threshold
from anomaly.scoring import THRESHOLD_METHODS, AnomalyDetector, ErrorStats, error_maps, smooth
from imaging import Preprocess, load_images

_MIN_GOOD = 8


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


def load_good(paths: Sequence[str], preprocess: Preprocess, what: str) -> np.ndarray:
    x, errors = load_images(list(paths), preprocess)
    if errors:
        listed = "\n  ".join(str(e) for e in errors[:20])
        raise TrainingSetError(
            f"{len(errors)} {what} images cannot be read:\n  {listed}\nfix or remove them"
        )
    return x


def labelled_for_f1(spec, good_threshold: list[str]) -> tuple[list[str], np.ndarray]:
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

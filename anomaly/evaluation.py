"""How well an anomaly detector separates and localizes defects: image AUROC (overall and per
defect type), pixel AUROC, AUPRO and F1 at the run's threshold, on a data set with masks.

`python -m anomaly.evaluate` is the command-line shell over `evaluate_run`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score
from tqdm import tqdm

import store
from anomaly.localize import AuproAccumulator, predicted_mask
from anomaly.postprocess import is_anomalous
from anomaly.scoring import AnomalyDetector
from imaging import ImageError, discover, image_size, read_image

log = logging.getLogger(__name__)
_BINS = 20_000


class EvaluationError(ValueError):
    """The data cannot be evaluated (no such split, a single class, ...)."""


def binned_auroc(pos_hist: np.ndarray, neg_hist: np.ndarray) -> float:
    """AUROC from score histograms over shared bins (ties within a bin count one half)."""
    pos = np.asarray(pos_hist, dtype=np.float64)
    neg = np.asarray(neg_hist, dtype=np.float64)
    if pos.sum() == 0 or neg.sum() == 0:
        raise EvaluationError("pixel AUROC needs both defect and good pixels")
    neg_below = np.cumsum(neg) - neg
    wins = np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg)
    return float(wins / (pos.sum() * neg.sum()))


def _read_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
    mask = read_image(path)
    mask = mask if mask.ndim == 2 else mask.max(axis=2)
    if mask.shape != shape:
        raise EvaluationError(f"{path}: mask is {mask.shape}, its image is {shape}")
    return mask > 127


def check_masks(spec, split: str = "test", shown: int = 3) -> None:
    """Refuse masks whose size differs from their image's, from headers, before any training."""
    items = spec.items[spec.items["split"] == split]
    bad = []
    for path, mask in zip(items["path"], items["mask_path"], strict=True):
        if not isinstance(mask, str) or not mask:
            continue
        try:
            sizes = image_size(path), image_size(mask)
        except ImageError as exc:
            bad.append(str(exc))
            continue
        if sizes[0] != sizes[1]:
            bad.append(
                f"{mask}: mask is {sizes[1][0]}x{sizes[1][1]}, its image {path} is "
                f"{sizes[0][0]}x{sizes[0][1]}"
            )
    if bad:
        more = f" (and {len(bad) - shown} more)" if len(bad) > shown else ""
        raise EvaluationError(
            f"{len(bad)} ground-truth masks in {spec.root} do not fit their images: "
            f"{'; '.join(bad[:shown])}{more}; fix or remove them before training"
        )


def evaluate_detector(
    detector: AnomalyDetector, spec, split: str = "test", batch_size: int = 32
) -> dict[str, Any]:
    """Metrics of a detector on one split of a data set (imaging.DatasetSpec)."""
    items = spec.items[spec.items["split"] == split].reset_index(drop=True)
    if items.empty:
        raise EvaluationError(f"{spec.root} has no {split} split; available: {spec.splits}")
    y = items["is_defect"].to_numpy(bool)
    if y.all() or not y.any():
        raise EvaluationError(f"{split} split of {spec.root} needs both good and defective images")
    scores = np.full(len(items), np.nan)
    maps: dict[int, np.ndarray] = {}
    shapes: dict[int, tuple[int, int]] = {}
    unreadable: list[str] = []
    for start in tqdm(range(0, len(items), batch_size), desc=f"scoring {split}", unit="batch"):
        idx, imgs = [], []
        for i in range(start, min(start + batch_size, len(items))):
            try:
                img = read_image(items.at[i, "path"])
            except ImageError as exc:
                unreadable.append(str(exc))
                continue
            idx.append(i)
            imgs.append(img)
            shapes[i] = img.shape[:2]
        if not imgs:
            continue
        s, m, _ = detector.score_arrays(detector.preprocess.apply_batch(imgs))
        scores[idx] = s
        maps.update(zip(idx, m, strict=True))
    ok = ~np.isnan(scores)
    s_ok, y_ok = scores[ok], y[ok]
    metrics: dict[str, Any] = {
        "split": split,
        "n_images": int(ok.sum()),
        "n_defective": int(y_ok.sum()),
        "unreadable": unreadable,
        "image_auroc": float(roc_auc_score(y_ok, s_ok)),
    }
    types = items.loc[ok, "defect_type"].to_numpy()
    metrics["image_auroc_by_type"] = {
        t: float(
            roc_auc_score(
                np.r_[np.zeros((~y_ok).sum()), np.ones((types == t).sum())],
                np.r_[s_ok[~y_ok], s_ok[types == t]],
            )
        )
        for t in sorted(set(types[y_ok]))
    }
    if detector.threshold is not None:
        pred = is_anomalous(s_ok, detector.threshold)
        metrics.update(
            threshold=detector.threshold,
            f1=float(f1_score(y_ok, pred, zero_division=0)),
            precision=float(precision_score(y_ok, pred, zero_division=0)),
            recall=float(recall_score(y_ok, pred, zero_division=0)),
            confusion_matrix=store.confusion_record(
                confusion_matrix(y_ok, pred, labels=[False, True]), ["good", "defect"], "defect"
            ),
            positive_class="defect",
        )
    metrics.update(_pixel_metrics(detector, items, maps, shapes))
    return metrics


def _pixel_metrics(detector, items, maps, shapes) -> dict[str, Any]:
    """Pixel AUROC over images with masks (defective) and good images (all-zero masks)."""
    has_mask = items["mask_path"].map(lambda m: isinstance(m, str) and m != "")
    usable = [i for i in maps if (not items.at[i, "is_defect"]) or has_mask[i]]
    if not any(items.at[i, "is_defect"] for i in usable):
        return {"pixel_auroc": None, "pixel_auroc_note": "no masks for the defective images"}
    top = max(float(maps[i].max()) for i in usable) or 1.0
    edges = np.linspace(0.0, top, _BINS + 1)
    pos, neg = np.zeros(_BINS), np.zeros(_BINS)
    pro = AuproAccumulator(edges=edges)
    pixel_threshold = getattr(detector, "pixel_threshold", None)
    counts = np.zeros(3)  # true positive, false positive, false negative pixels
    for i in usable:
        full = detector.preprocess.cam_to_original(maps[i], shapes[i])
        if items.at[i, "is_defect"]:
            mask = _read_mask(items.at[i, "mask_path"], shapes[i])
        else:
            mask = np.zeros(shapes[i], bool)
        pos += np.histogram(full[mask], edges)[0]
        neg += np.histogram(full[~mask], edges)[0]
        pro.add(full, mask)
        if pixel_threshold is not None:
            pred = predicted_mask(full, pixel_threshold)
            counts += [np.sum(pred & mask), np.sum(pred & ~mask), np.sum(~pred & mask)]
    out: dict[str, Any] = {
        "pixel_auroc": binned_auroc(pos, neg),
        "aupro": pro.result(0.3),
        "aupro_max_fpr": 0.3,
        "pixel_images": len(usable),
    }
    if pixel_threshold is not None:
        tp, fp, fn = counts
        out.update(
            pixel_threshold=float(pixel_threshold),
            pixel_precision=float(tp / max(tp + fp, 1)),
            pixel_recall=float(tp / max(tp + fn, 1)),
            pixel_f1=float(2 * tp / max(2 * tp + fp + fn, 1)),
        )
    return out


def evaluate_run(run: Any, data: str | Path, split: str = "test") -> dict[str, Any]:
    """Evaluate a saved run (name, path or store.Run) on a data set folder."""
    detector = AnomalyDetector.from_run(run)
    return evaluate_detector(detector, discover(data), split)

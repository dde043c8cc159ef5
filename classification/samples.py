"""The W&B sample-prediction table of a classifier run: misclassified test images first, each
with its Grad-CAM overlay (classification.training logs it when tracking is on)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from classification.inference import cam_targets

log = logging.getLogger(__name__)

SAMPLE_ROWS = 16


def log_samples(
    tracker: Any, model: Any, test: Any, probabilities: np.ndarray, dataset: Any, labels: tuple
) -> None:
    """Log the table "test/samples"; `labels` is (class names, normal class, CAM layer, seed)."""
    class_names, normal, cam_layer, seed = labels
    picks = _pick_samples(test, probabilities, class_names, seed)
    frame = test.iloc[picks]
    x = np.concatenate([b for b in dataset(frame, False).map(lambda xb, _: xb)])
    columns, rows = _sample_rows(
        model, x, frame, probabilities[picks], class_names, normal, cam_layer
    )
    tracker.log_table("test/samples", columns, rows)


def _overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Heatmap (JET) blended over a gray or RGB image, RGB uint8, for the W&B sample table."""
    import cv2

    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.addWeighted(base, 0.6, heat, 0.4, 0), cv2.COLOR_BGR2RGB)


def _sample_rows(
    model: Any,
    x: np.ndarray,
    frame: Any,
    probabilities: np.ndarray,
    class_names: list[str],
    normal: str,
    cam_layer: str,
) -> tuple[list[str], list[list[Any]]]:
    """Rows of the W&B sample-prediction table: image, heatmap overlay, truth, prediction."""
    columns = ["file", "true", "predicted", "defect_probability", "image"]
    normal_index = class_names.index(normal)
    predicted = probabilities.argmax(axis=1)
    gray = [np.uint8(np.round((img[:, :, 0] if img.shape[2] == 1 else img) * 255)) for img in x]
    try:
        from explain import compute_cams
    except ImportError:
        log.warning("explain package not importable: sample table logged without heatmaps")
        cams = None
    else:
        targets = cam_targets(probabilities, class_names, normal)
        cams = compute_cams(model, x, layer=cam_layer, class_index=targets)
        columns.append("gradcam")
    rows = []
    for i, row in enumerate(frame.itertuples()):
        cells = [
            Path(row.path).name,
            row.label,
            class_names[predicted[i]],
            float(1.0 - probabilities[i, normal_index]),
            gray[i],
        ]
        if cams is not None:
            cells.append(_overlay(gray[i], cams[i]))
        rows.append(cells)
    return columns, rows


def _pick_samples(test: Any, probabilities: np.ndarray, class_names: list[str], seed: int):
    """Misclassified images first, then a spread over classes, at most SAMPLE_ROWS."""
    truth = np.array([class_names.index(c) for c in test.label])
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != truth)
    right = np.random.default_rng(seed).permutation(
        np.flatnonzero(probabilities.argmax(1) == truth)
    )
    return np.concatenate([wrong, right])[:SAMPLE_ROWS]

"""Evidence pictures of a run's verdicts: heatmap, the run's boxes, the ground-truth outline.

One picture per image, drawn the same way on the Error analysis page and in the inspection
report: the image at its original size with the defect-class heatmap blended over it, the boxes
the run draws from that heatmap (for images it flags) and the outline of the true defect mask.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classification.inference import predict_images
from explain.overlay import blend, draw_boxes, outline_mask
from imaging import Preprocess, read_image
from store import Run

DEFAULT_CAM = "gradcam"


def _mask(path: object) -> np.ndarray | None:
    if not isinstance(path, str) or not path or not Path(path).is_file():
        return None
    mask = read_image(path)
    return mask[:, :, 0] if mask.ndim == 3 else mask


def evidence_images(
    run: Run,
    paths: Sequence[str],
    mask_paths: Sequence[object] | None = None,
    threshold: float | None = None,
    method: str = DEFAULT_CAM,
    opacity: float = 0.45,
) -> list[np.ndarray]:
    """RGB uint8 pictures (original size) of each image's heatmap, boxes and truth outline."""
    if not paths:
        return []
    frame = predict_images(
        run, list(paths), cam=method, boxes=True, keep_cams=True, threshold=threshold
    )
    preprocess = Preprocess.from_dict(run.info["preprocess"])
    masks = list(mask_paths) if mask_paths is not None else [None] * len(paths)
    pictures = []
    for path, mask_path, row in zip(paths, masks, frame.itertuples(), strict=True):
        image = read_image(path)
        heat = preprocess.cam_to_original(row.cam, image.shape[:2])
        picture = blend(image, heat, "jet", opacity)
        boxes = [(b["x_min"], b["y_min"], b["x_max"], b["y_max"]) for b in json.loads(row.boxes)]
        picture = draw_boxes(picture, boxes)
        mask = _mask(mask_path)
        if mask is not None:
            picture = outline_mask(picture, mask)
        pictures.append(picture)
    return pictures

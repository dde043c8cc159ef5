"""Where the network looked: the Grad-CAM family, heatmaps to boxes, heatmap quality metrics."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from explain.boxes import Box, cam_to_boxes
from explain.cams import CAM, METHODS, get_explainer
from explain.layers import ExplainError, candidate_layers, find_target_layer

BACKENDS = ("fast", "tf-keras-vis")


def compute_cams(
    model: keras.Model,
    images: np.ndarray,
    method: str = "gradcam",
    layer: str | None = None,
    class_index: int | Sequence[int] | None = None,
    backend: str = "fast",
    **kw,
) -> np.ndarray:
    """Heatmaps float32 (N, H, W) in [0, 1] at the images' size, for the predicted class by default.

    methods: gradcam, gradcam++, hirescam, xgradcam, eigencam, scorecam, layercam, smoothgrad,
    saliency. layer: a name from `candidate_layers(model)` (default `find_target_layer(model)`).
    backend "fast" is our compiled batched path; "tf-keras-vis" calls tf-keras-vis' own
    classes (flat models only).
    kw: score ("auto" | "logit" | "probability"), batch_size, normalize, jit_compile,
    max_N (scorecam), smooth_samples / smooth_noise / seed (smoothgrad).
    """
    if backend == "tf-keras-vis":
        from explain.tfkerasvis import tf_keras_vis_cams

        return tf_keras_vis_cams(model, images, method, layer, class_index, **kw)
    if backend != "fast":
        raise ExplainError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    call = {k: kw.pop(k) for k in ("batch_size", "normalize", "return_targets") if k in kw}
    return get_explainer(model, method, layer, **kw)(images, class_index, **call)


__all__ = [
    "BACKENDS",
    "CAM",
    "METHODS",
    "Box",
    "ExplainError",
    "candidate_layers",
    "cam_to_boxes",
    "compute_cams",
    "find_target_layer",
    "get_explainer",
]

"""Box head: defect boxes that follow each defect's outline (issue #16).

A Grad-CAM map comes from the classifier's last convolution, 1/8 of the input or coarser: it
points at the right defect, but one blob covers a whole pinhole cluster and often only one end
of a scratch, so the boxes drawn around it are loose (docs/metrics.md). Where the data set has
defect masks, a small head learns to mark defect pixels from the classifier's own frozen
features at every resolution from half the input down to the CAM layer (one 1 x 1 projection
per level, upsampled and joined, two 3 x 3 convolutions, a sigmoid). The classifier is not
changed. `python -m classification.boxhead` trains it (classification.boxhead); this module
builds, loads and applies it.

Boxes come from the head's map, kept only where they touch the heatmap's hot region (Otsu):
the heatmap still decides *which* regions are the classifier's evidence, the head how far each
one reaches. A head region the heatmap does not touch is not shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from explain.boxes import Box, hot_mask
from explain.layers import (
    ExplainError,
    _output,
    _walk,
    candidate_layers,
    resolve_layer,
    split_model,
)

log = logging.getLogger(__name__)

HEAD_FILE = "box_head.keras"
INFO_KEY = "box_head"
PROJECTED = 16  # channels per feature level after the 1 x 1 projection
# A head pixel at or above this probability is defect; 0.5 is the head's own decision boundary
# (chosen before measuring; 0.3-0.6 measured in docs/metrics.md).
THRESHOLD = 0.5


def pyramid_layers(model: Any, cam_layer: str | None = None) -> list[str]:
    """The last CAM-able layer at each spatial size, from half the input down to the CAM layer.

    simple_cnn at 160 px: block1_relu (80), block2_relu (40), last_conv (20). The full input
    resolution is skipped (the first convolution's output is edges, not defects), and so are
    padding and cropping layers (MobileNetV2's block_3_pad: a border around a level, not one).
    """
    import keras

    cam_path = "/".join(resolve_layer(model, cam_layer))
    candidates = candidate_layers(model)
    walked = {path: (layer, graph) for path, layer, graph in _walk(model)}
    border = (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)
    height = model.inputs[0].shape[1]
    chosen: dict[tuple, str] = {}
    for path in candidates[: candidates.index(cam_path) + 1]:
        layer, graph = walked[path]
        size = tuple(_output(graph, layer).shape[1:3])
        if isinstance(layer, border):
            continue
        if height is not None and size[0] is not None and size[0] > height // 2:
            continue
        chosen[size] = path  # later layers at the same size replace earlier ones
    cam_layer_obj, cam_graph = walked[cam_path]
    chosen[tuple(_output(cam_graph, cam_layer_obj).shape[1:3])] = cam_path
    return list(chosen.values())


def feature_extractor(model: Any, paths: list[str]) -> Any:
    """images -> list of activations at `paths` (one pass for top-level layers)."""
    import keras

    from explain.layers import _graph

    if all("/" not in p for p in paths):
        graph = _graph(model)
        outputs = [_output(graph, graph.get_layer(p), p) for p in paths]
        multi = keras.Model(graph.inputs[0], outputs)
        return lambda x: [np.asarray(a) for a in multi(x, training=False)]
    features = [split_model(model, p.split("/")).features for p in paths]
    return lambda x: [np.asarray(f(x, training=False)) for f in features]


def level_scales(maps: list[np.ndarray]) -> list[float]:
    """Root mean square of each level's activations (on a batch of training images): the
    head divides by it, so every level enters at unit scale whatever the backbone (an
    untrained ResNet50's last stage is thousands of times larger than simple_cnn's)."""
    return [float(np.sqrt(np.mean(np.square(m, dtype=np.float64)))) or 1.0 for m in maps]


def build_head(
    shapes: list[tuple[int, int, int]], scales: list[float] | None = None, seed: int = 0
) -> Any:
    """Inputs: one activation map per level; output: (h, w, 1) defect probability at the
    finest level's resolution. scales: `level_scales` (default 1: no rescaling)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    height = max(s[0] for s in shapes)
    width = max(s[1] for s in shapes)
    scales = scales or [1.0] * len(shapes)
    inputs = [keras.Input(s, name=f"level{i}") for i, s in enumerate(shapes)]
    joined = []
    for i, (inp, shape) in enumerate(zip(inputs, shapes, strict=True)):
        x = layers.Rescaling(1.0 / scales[i], name=f"scale{i}")(inp)
        x = layers.Conv2D(PROJECTED, 1, activation="relu", name=f"project{i}")(x)
        if shape[:2] != (height, width):
            x = layers.Resizing(height, width, interpolation="bilinear", name=f"up{i}")(x)
        joined.append(x)
    x = layers.Concatenate(name="join")(joined) if len(joined) > 1 else joined[0]
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid", name="defect")(x)
    return keras.Model(inputs, out, name="box_head")


@dataclass
class BoxHead:
    """A run's trained box head, ready for inference."""

    model: Any
    extract: Any
    threshold: float
    layers: list[str]

    def maps(self, x: np.ndarray) -> np.ndarray:
        """Model-input batch -> (N, h, w) defect probability at the head's grid."""
        return np.asarray(self.model(self.extract(x), training=False))[..., 0]


def load_box_head(run: Any, model: Any = None) -> BoxHead | None:
    """The run's box head, or None when it has none (safe-mode load, standard layers only).

    model: the run's classifier when already loaded (else loaded here)."""
    import keras

    record = run.info.get(INFO_KEY)
    path = run.path / HEAD_FILE
    if not record or not path.exists():
        return None
    head = keras.saving.load_model(path, safe_mode=True, compile=False)
    model = run.load_model() if model is None else model
    return BoxHead(
        head,
        feature_extractor(model, list(record["layers"])),
        float(record["threshold"]),
        list(record["layers"]),
    )


def head_boxes(
    prob: np.ndarray,
    cam: np.ndarray,
    threshold: float = THRESHOLD,
    min_area: int = 16,
    gate: str | float = "otsu",
) -> list[Box]:
    """Boxes around the head's defect regions that touch the heatmap's hot region.

    prob and cam: (H, W) over the same image (both mapped back to the original). gate: the
    heatmap threshold ("otsu" or a fraction of its peak) that makes the hot region. Box score
    and mean: the heatmap's peak and mean inside the region, as for `cam_to_boxes`, so
    exports and tables read the same for both box steps. Hottest first.
    """
    prob, cam = np.asarray(prob, np.float32), np.asarray(cam, np.float32)
    if prob.shape != cam.shape:
        raise ExplainError(f"box head map {prob.shape} and heatmap {cam.shape} differ in shape")
    hot = hot_mask(cam, gate)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (prob >= threshold).astype(np.uint8), connectivity=8
    )
    boxes = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area:
            continue
        region = labels == label
        if not hot[region].any():
            continue
        inside = cam[region]
        boxes.append(Box(x, y, x + w, y + h, float(inside.max()), float(inside.mean()), area))
    return sorted(boxes, key=lambda b: -b.score)

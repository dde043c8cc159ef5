"""Mask supervision: defect masks as a second training signal for a classifier (issue #21).

An image label says "somewhere in these 20,000 pixels is a defect"; a mask says where. With a
few hundred images the label alone is not enough for a network trained from scratch to find
the defects: it memorises the parts instead (docs/small-data.md). Where the data set has defect
masks (the synthetic generator's masks/, an MVTec ground_truth/ folder, a manifest's mask_path
column), training adds a 1 x 1 sigmoid head on the Grad-CAM layer that must light the grid
cells holding a defect, next to the classification loss, as in segmentation-supervised defect
classifiers (Tabernik et al. 2019, KolektorSDD). The head exists only while training: the saved
model is the classifier as before, so inference, CAMs and every consumer are unchanged.

Masks are prepared like the images (same crop, same resize), augmented with the same draw
(flips move the mask, noise does not), and reduced to the head's grid by "any defect pixel in
the cell". Good images are all background; a defective image without a mask counts for the
classification loss only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from classification.smalldata import SMALL_SET

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
# The mask loss weighs 10 times the classification loss: on the 240-part sets of issue #21
# (seeds 4, 5, 6) weights 1 / 3 / 10 gave test accuracy 0.86-0.88 / 0.90-0.98 / 0.92-1.00
# (docs/small-data.md). Defect cells weigh 10 times a background cell (a defect covers ~1 % of
# the part, a few % of the grid cells).
MASK_WEIGHT = 10.0
POSITIVE_WEIGHT = 10.0
# Fewer masked defective training images than this: auto leaves mask supervision off.
MIN_MASKED = 8
UNKNOWN = 2  # mask value of a defective image without a mask (no mask loss)
HEAD_NAME = "mask_head"


class MaskSupervisionError(ValueError):
    """--masks on for a data set without defect masks, or an unreadable mask."""


@dataclass(frozen=True)
class MaskPlan:
    """What mask supervision a run trains with; `record()` goes to run.json."""

    layer: str
    masked: int  # defective training images with a mask
    unmasked: int  # defective training images without one (classification loss only)
    good: int

    def record(self, grid: tuple[int, int]) -> dict[str, Any]:
        return {
            **asdict(self),
            "grid": list(grid),
            "weight": MASK_WEIGHT,
            "positive_weight": POSITIVE_WEIGHT,
        }


def has_mask(value: Any) -> bool:
    """Whether a mask_path cell names a mask file (manifests leave it empty or NaN)."""
    return isinstance(value, str) and bool(value)


def plan_mask_supervision(
    train_items: Any, normal: str, mode: str, layer: str, where: str
) -> tuple[MaskPlan | None, str | None]:
    """(plan or None, note for run.json or None) for the training items and `--masks mode`.

    auto: on under SMALL_SET training images when at least MIN_MASKED defective ones have
    masks (where it was measured to matter); on: whenever masks exist (refused without);
    off: never.
    """
    if mode not in MODES:
        raise MaskSupervisionError(f"--masks {mode!r}: choose one of {', '.join(MODES)}")
    defective = train_items[train_items["label"] != normal]
    masked = int(defective["mask_path"].map(has_mask).sum()) if len(defective) else 0
    plan = MaskPlan(layer, masked, len(defective) - masked, len(train_items) - len(defective))
    if mode == "off":
        return None, None
    if mode == "on":
        if masked == 0:
            raise MaskSupervisionError(
                f"--masks on: no defective training image in {where} has a defect mask; "
                "add masks (docs/data.md: masks/, MVTec ground_truth/ or a mask_path column) "
                "or use --masks auto"
            )
        return plan, f"mask supervision on {masked} masked defective training images (--masks on)"
    if len(train_items) >= SMALL_SET or masked < MIN_MASKED:
        return None, None
    note = (
        f"{len(train_items)} training images (< {SMALL_SET}) with {masked} defect masks: "
        f"trained with mask supervision on {layer} (--masks off to train on labels alone)"
    )
    log.info(note)
    return plan, note


def mask_coverage(path: str, preprocess: Any, shape: tuple[int, int], fix: str) -> np.ndarray:
    """A mask file -> float32 (h, w): the share of defect pixels in each cell after the images'
    crop (area averaging). An unreadable file is refused naming it and `fix`."""
    import cv2

    from imaging.decode import ImageError, read_image, to_gray

    try:
        pixels = to_gray(read_image(path)) > 127
    except ImageError as exc:
        raise MaskSupervisionError(f"defect mask {path}: {exc.reason}; {fix}") from None
    y0, y1, x0, x1 = preprocess.crop_window(pixels.shape)
    cropped = pixels[y0:y1, x0:x1].astype(np.float32)
    return cv2.resize(cropped, shape[::-1], interpolation=cv2.INTER_AREA)


def prepare_mask(path: str, preprocess: Any) -> np.ndarray:
    """A mask file -> uint8 0/1 at the prepared size: the images' crop, then any defect pixel
    in the area a prepared pixel covers counts (thin scratches and pinholes survive)."""
    share = mask_coverage(path, preprocess, preprocess.shape, "fix it or train with --masks off")
    return (share > 0).astype(np.uint8)


def prepare_masks(items: Any, normal: str, preprocess: Any) -> np.ndarray:
    """uint8 (N, H, W): 0/1 masks, zeros for good images, UNKNOWN for unmasked defects."""
    height, width = preprocess.shape
    out = np.zeros((len(items), height, width), np.uint8)
    for i, (label, path) in enumerate(zip(items["label"], items["mask_path"], strict=True)):
        if label == normal:
            continue
        out[i] = prepare_mask(path, preprocess) if has_mask(path) else UNKNOWN
    return out


def with_mask_head(model: Any, layer: str) -> tuple[Any, tuple[int, int]]:
    """(training model with outputs [predictions, mask], the mask grid) over `model`'s layers.

    The head is a 1 x 1 convolution with a sigmoid on `layer`; the classifier shares every
    other weight, so training the pair trains `model`.
    """
    import keras
    from keras import layers

    features = model.get_layer(layer).output
    head = layers.Conv2D(1, 1, activation="sigmoid", name=HEAD_NAME)(features)
    pair = keras.Model(model.inputs, [model.outputs[0], head], name=f"{model.name}_masks")
    return pair, (int(head.shape[1]), int(head.shape[2]))


def grid_targets(masks: Any, grid: tuple[int, int]) -> Any:
    """uint8 (B, H, W) masks -> float32 (B, h, w, 1) targets on the head's grid: 1 where any
    pixel of the cell is a defect, 0 elsewhere, -1 everywhere for an unmasked defect."""
    import tensorflow as tf

    height, width = int(masks.shape[1]), int(masks.shape[2])
    k = max(math.ceil(height / grid[0]), math.ceil(width / grid[1]))
    values = tf.cast(masks[..., None], tf.float32)
    values = tf.image.resize(values, (grid[0] * k, grid[1] * k), method="nearest")
    pooled = tf.nn.max_pool2d(values, k, k, "VALID")
    return tf.where(pooled >= UNKNOWN, -1.0, pooled)


def mask_loss(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy over the known cells, defect cells weighted POSITIVE_WEIGHT."""
    from keras import ops

    known = ops.cast(y_true >= 0, "float32")
    target = ops.clip(y_true, 0.0, 1.0)
    bce = ops.binary_crossentropy(target, y_pred)
    weights = known * (1.0 + (POSITIVE_WEIGHT - 1.0) * target)
    return ops.sum(bce * weights) / ops.maximum(ops.sum(known), 1.0)


def weighted_class_loss(class_weight: dict[int, float]) -> Any:
    """Sparse categorical cross-entropy with per-class weights (Keras' class_weight, which
    fit refuses for a model with two outputs)."""
    from keras import losses, ops

    weights = ops.convert_to_tensor([class_weight[i] for i in range(len(class_weight))])

    def class_loss(y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        per_image = losses.sparse_categorical_crossentropy(labels, y_pred)
        return ops.mean(per_image * ops.take(weights, labels))

    return class_loss


def rename_logs_callback() -> Any:
    """A callback that makes the pair's logs read like a plain classifier's.

    loss, accuracy (and val_) are the classification output's, as in every other run, so
    epoch selection, early stopping, history.csv and the app compare like with like; the
    mask loss is kept as mask_loss / val_mask_loss and the sum as total_loss. It must come
    first: Keras passes the same logs dict to every callback in turn.
    """
    import keras

    renames = {
        "predictions_loss": "loss",
        "predictions_accuracy": "accuracy",
        f"{HEAD_NAME}_loss": "mask_loss",
    }

    class ClassifierLogs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is None:
                return
            for prefix in ("", "val_"):
                if f"{prefix}predictions_loss" in logs and f"{prefix}loss" in logs:
                    logs[f"{prefix}total_loss"] = logs.pop(f"{prefix}loss")
                for old, new in renames.items():
                    if f"{prefix}{old}" in logs:
                        logs[f"{prefix}{new}"] = logs.pop(f"{prefix}{old}")

    return ClassifierLogs()

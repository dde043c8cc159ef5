"""BatchNorm statistics re-estimated on the training data, so inference sees what training saw.

A BatchNorm layer normalises with the statistics of each batch while training and with its
moving averages at inference. After a few dozen steps those averages still carry their
initial values (mean 0, variance 1) and the activations of weights that have since changed:
on a 160-image set, a model that scores 0.66 in training mode answered one class for every
image in inference mode (issue #21). `recalibrate_batchnorm` replaces the moving averages by
the plain average of the batch statistics over the training images ("precise BN"), in training
mode, exactly as the layers normalised while learning; `RecalibrateBatchNorm` does it before
every validation, so early stopping and checkpoints judge the model that will be saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

# 16 batches of 32 (512 images) give stable per-channel statistics; a larger set is sampled in
# the order its pipeline yields (shuffled for training data), keeping the cost to a fraction of
# an epoch.
MAX_BATCHES = 16


def batchnorm_layers(model: keras.Layer) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer in `model`, nested models included, in graph order."""
    found: list[keras.layers.BatchNormalization] = []
    seen: set[int] = set()

    def walk(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        for child in getattr(layer, "layers", []):
            walk(child)

    for layer in getattr(model, "layers", []):
        walk(layer)
    return found


def _images(batch: Any) -> Any:
    return batch[0] if isinstance(batch, tuple | list) else batch


def recalibrate_batchnorm(
    model: keras.Model, batches: Iterable[Any], max_batches: int = MAX_BATCHES
) -> int:
    """Set every BatchNorm layer's moving mean and variance to the average batch statistics.

    `batches` yields image batches or (images, labels) pairs, unaugmented training data in
    batches of the training batch size. Each batch updates with momentum 1 - b/n (b its size,
    n the images seen so far), so the moving statistics end as the image-weighted mean of the
    batch statistics (the exact mean over all images; for the variance, the within-batch
    variance the layers normalised with while training) and none of the old values remain.
    Trainable weights do not change. Returns the number of batches used; a model without
    BatchNorm (or no batches) is left as it is and returns 0.
    """
    layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    used, seen = 0, 0
    try:
        for batch in batches:
            if used >= max_batches:
                break
            images = _images(batch)
            size = int(images.shape[0])
            used, seen = used + 1, seen + size
            for layer in layers:
                layer.momentum = 1.0 - size / seen
            # Eager call: reads the momentum set above (a traced step would have baked it in).
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return used


def moving_statistics(model: keras.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer name: (moving mean, moving variance)} of every BatchNorm layer, as numpy."""
    return {
        layer.name: (
            keras.ops.convert_to_numpy(layer.moving_mean),
            keras.ops.convert_to_numpy(layer.moving_variance),
        )
        for layer in batchnorm_layers(model)
    }


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Re-estimates BatchNorm statistics on `batches` before each validation during fit.

    Keras runs `on_test_begin` of fit's callbacks before every validation pass, so validation
    metrics, early stopping and checkpoints all see the statistics inference will use.
    """

    def __init__(self, batches: Iterable[Any], max_batches: int = MAX_BATCHES) -> None:
        super().__init__()
        self.batches = batches
        self.max_batches = max_batches

    def on_test_begin(self, logs: dict | None = None) -> None:
        recalibrate_batchnorm(self.model, self.batches, self.max_batches)

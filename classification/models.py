"""The classifier zoo: one small CNN built for Grad-CAM, and Keras application backbones.

Every model takes grayscale (size, size, 1) float32 in [0, 1] and ends in a softmax over the
run's class names (binary = 2 outputs). Backbones get their 3 channels and input range from
built-in layers inside the model, so saved runs load with Keras safe mode (no Lambda layers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

log = logging.getLogger(__name__)

WEIGHTS = ("none", "imagenet")
MIN_BACKBONE_SIZE = 32


class ModelError(ValueError):
    """An unknown model name or an unusable combination of model options."""


class WeightsUnavailableError(ModelError):
    """ImageNet weights could not be downloaded or read."""


@dataclass(frozen=True)
class Backbone:
    """How to feed a keras.applications network grayscale [0, 1] input."""

    builder: str
    scale: float
    offset: float | tuple[float, float, float]
    cam_layer: str
    weights_file: str


# Input ranges from each family's preprocess_input: mobilenet "tf" mode [-1, 1], EfficientNet
# rescales [0, 255] itself, ResNet50 "caffe" mode subtracts the ImageNet BGR means from [0, 255]
# (channel order is irrelevant for replicated grayscale).
BACKBONES = {
    "mobilenetv2": Backbone(
        "MobileNetV2",
        2.0,
        -1.0,
        "out_relu",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
    ),
    "efficientnetb0": Backbone(
        "EfficientNetB0", 255.0, 0.0, "top_activation", "efficientnetb0_notop.h5"
    ),
    "resnet50": Backbone(
        "ResNet50",
        255.0,
        (-103.939, -116.779, -123.68),
        "conv5_block3_out",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}
MODEL_NAMES = ("simple_cnn", *BACKBONES)
SIMPLE_CNN_CAM_LAYER = "last_conv"
# Short runs on small data sets: moving statistics must settle within a few hundred steps.
BN_MOMENTUM = 0.9


def cam_layer_name(name: str) -> str:
    """The layer Grad-CAM should target for a model family (recorded in run.json)."""
    if name == "simple_cnn":
        return SIMPLE_CNN_CAM_LAYER
    _check_name(name)
    return BACKBONES[name].cam_layer


def build_model(
    name: str, num_classes: int, img_size: int, weights: str = "none", dropout: float = 0.3
) -> keras.Model:
    """Build an uncompiled classifier `name` for (img_size, img_size, 1) input."""
    _check_name(name)
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    if weights not in WEIGHTS:
        raise ModelError(f"--weights must be one of {WEIGHTS}, got {weights!r}")
    if name == "simple_cnn":
        if weights == "imagenet":
            raise ModelError("simple_cnn has no ImageNet weights: use --weights none")
        return _simple_cnn(num_classes, img_size, dropout)
    return _backbone_model(name, num_classes, img_size, weights, dropout)


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def _conv_block(x, filters: int, name: str, pool: bool):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


def _simple_cnn(num_classes: int, img_size: int, dropout: float) -> keras.Model:
    """Four conv stages down to 1/8 of the input (28x28 at 224 px) so CAMs keep their detail."""
    if img_size < 16:
        raise ModelError(f"simple_cnn needs images of at least 16 px, got {img_size}")
    inputs = keras.Input((img_size, img_size, 1), name="image")
    x = layers.Conv2D(24, 5, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = _conv_block(x, 32, "block1", pool=True)
    x = _conv_block(x, 64, "block2", pool=True)
    x = _conv_block(x, 96, "block3", pool=False)
    # Grad-CAM target: the last spatial map, kept at 1/8 resolution and activated in place.
    x = layers.Conv2D(128, 3, padding="same", activation="relu", name=SIMPLE_CNN_CAM_LAYER)(x)
    # Max pooling next to average pooling: a defect covers ~1 % of the part, and its evidence
    # would be diluted to nothing by an average alone.
    x = layers.Concatenate(name="pool")(
        [layers.GlobalAveragePooling2D(name="gap")(x), layers.GlobalMaxPooling2D(name="gmp")(x)]
    )
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="simple_cnn")


def _weights_file(spec: Backbone, img_size: int) -> str:
    rows = img_size if img_size in (96, 128, 160, 192, 224) else 224
    return spec.weights_file.format(rows=rows)


def _backbone_model(
    name: str, num_classes: int, img_size: int, weights: str, dropout: float
) -> keras.Model:
    if img_size < MIN_BACKBONE_SIZE:
        raise ModelError(f"{name} needs images of at least {MIN_BACKBONE_SIZE} px, got {img_size}")
    spec = BACKBONES[name]
    inputs = keras.Input((img_size, img_size, 1), name="image")
    x = layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
    x = layers.Rescaling(spec.scale, name="to_backbone_range")(x)
    if isinstance(spec.offset, tuple):
        x = layers.Normalization(mean=[-o for o in spec.offset], variance=[1.0] * 3, name="mean")(x)
    elif spec.offset:
        x = layers.Rescaling(1.0, offset=spec.offset, name="shift")(x)
    builder = getattr(keras.applications, spec.builder)
    try:
        backbone = builder(
            include_top=False,
            weights=None if weights == "none" else "imagenet",
            input_tensor=x,
            input_shape=(img_size, img_size, 3),
        )
    except Exception as exc:
        if weights != "imagenet":
            raise
        target = Path("~/.keras/models") / _weights_file(spec, img_size)
        raise WeightsUnavailableError(
            f"could not download ImageNet weights for {name}: no internet? use --weights none "
            f"or place the file in {target} ({type(exc).__name__}: {exc})"
        ) from exc
    x = layers.GlobalAveragePooling2D(name="gap")(backbone.output)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)

"""The classifier zoo: one small CNN built for Grad-CAM, and Keras application backbones.

Every model takes float32 (height, width, channels) in [0, 1], grayscale (1 channel) or RGB (3),
square or not, and ends in a softmax over the run's class names (binary = 2 outputs).
Backbones get their 3 channels and input range from
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
    name: str,
    num_classes: int,
    img_size: int | tuple[int, int],
    weights: str = "none",
    dropout: float = 0.3,
    alpha: float = 1.0,
    channels: int = 1,
) -> keras.Model:
    """Build an uncompiled classifier `name` for (H, W, channels) input.

    img_size: one side (square) or (height, width). channels: 1 (gray) or 3 (RGB).
    alpha: MobileNetV2's width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4); 1.0 for the others.
    """
    _check_name(name)
    shape = _input_shape(img_size, channels)
    if not alpha > 0:
        raise ModelError(f"--alpha {alpha}: the width multiplier must be positive")
    if alpha != 1.0 and name != "mobilenetv2":
        raise ModelError(f"--alpha {alpha}: only mobilenetv2 has a width multiplier")
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    if weights not in WEIGHTS:
        raise ModelError(f"--weights must be one of {WEIGHTS}, got {weights!r}")
    if name == "simple_cnn":
        if weights == "imagenet":
            raise ModelError("simple_cnn has no ImageNet weights: use --weights none")
        return _simple_cnn(num_classes, shape, dropout)
    return _backbone_model(name, num_classes, shape, weights, dropout, alpha)


def _input_shape(img_size, channels: int) -> tuple[int, int, int]:
    if channels not in (1, 3):
        raise ModelError(f"channels must be 1 (gray) or 3 (rgb), got {channels!r}")
    if isinstance(img_size, list | tuple):
        if len(img_size) != 2:
            raise ModelError(f"img_size must be one side or (height, width), got {img_size!r}")
        return int(img_size[0]), int(img_size[1]), channels
    return int(img_size), int(img_size), channels


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


def _simple_cnn(num_classes: int, shape: tuple[int, int, int], dropout: float) -> keras.Model:
    """Four conv stages down to 1/8 of the input (28x28 at 224 px) so CAMs keep their detail."""
    if min(shape[:2]) < 16:
        raise ModelError(f"simple_cnn needs images of at least 16 px, got {shape[0]}x{shape[1]}")
    inputs = keras.Input(shape, name="image")
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


def _weights_file(spec: Backbone, shape: tuple[int, ...]) -> str:
    rows = shape[0] if shape[0] == shape[1] and shape[0] in (96, 128, 160, 192, 224) else 224
    return spec.weights_file.format(rows=rows)


def _backbone_model(
    name: str,
    num_classes: int,
    shape: tuple[int, int, int],
    weights: str,
    dropout: float,
    alpha: float = 1.0,
) -> keras.Model:
    if min(shape[:2]) < MIN_BACKBONE_SIZE:
        raise ModelError(
            f"{name} needs images of at least {MIN_BACKBONE_SIZE} px, got {shape[0]}x{shape[1]}"
        )
    spec = BACKBONES[name]
    inputs = keras.Input(shape, name="image")
    x = inputs
    if shape[2] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
    x = layers.Rescaling(spec.scale, name="to_backbone_range")(x)
    if isinstance(spec.offset, tuple):
        x = layers.Normalization(mean=[-o for o in spec.offset], variance=[1.0] * 3, name="mean")(x)
    elif spec.offset:
        x = layers.Rescaling(1.0, offset=spec.offset, name="shift")(x)
    builder = getattr(keras.applications, spec.builder)
    width = {"alpha": alpha} if name == "mobilenetv2" else {}
    try:
        backbone = builder(
            **width,
            include_top=False,
            weights=None if weights == "none" else "imagenet",
            input_tensor=x,
            input_shape=(*shape[:2], 3),
        )
    except Exception as exc:
        if weights != "imagenet":
            raise
        target = Path("~/.keras/models") / _weights_file(spec, shape)
        raise WeightsUnavailableError(
            f"could not download ImageNet weights for {name}: no internet? use --weights none "
            f"or place the file in {target} ({type(exc).__name__}: {exc})"
        ) from exc
    if weights == "none":
        # Trained from scratch on a few thousand images: the applications' 0.99/0.999 momentum
        # would leave the moving statistics at their initial values (validation at chance).
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = BN_MOMENTUM
    x = layers.GlobalAveragePooling2D(name="gap")(backbone.output)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)

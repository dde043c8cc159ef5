"""Patch-feature extractors for PatchCore and PaDiM: one Keras model, image in, features out.

The extractor takes the run's prepared images (S, S, 1) in [0, 1] and returns locally
aggregated patch features (h, w, D): two intermediate layers of a backbone, each averaged over
its 3x3 neighbourhood (PatchCore's local aggregation), the finer one pooled down to the coarser
one's grid, concatenated, and optionally projected to fewer dimensions by a 1x1 convolution
holding a PCA fitted on good parts. Everything is built-in Keras layers, so the extractor is
saved as the run's model.keras and loads in safe mode.

Where the backbone weights come from (recorded in run.json under "features"):
- "run": the convolutional layers of a classifier run (`--backbone-run demo_flip`). Its
  weights were learned from labelled defects, so the detector is only as label-free as that run.
- "random": the same architecture freshly initialised (a baseline that saw no data at all).
- "imagenet": a keras.applications network with ImageNet weights (`--backbone mobilenetv2
  --weights imagenet`); downloading them needs internet, and offline it fails with one line.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SOURCES = ("run", "random", "imagenet")
# keras.applications networks: builder, input scale and offset (from each family's
# preprocess_input; channel order is irrelevant for replicated gray), default feature layers
# at 1/4 and 1/8 of the input.
APPLICATIONS = {
    "mobilenetv2": ("MobileNetV2", 2.0, -1.0, ("block_3_expand_relu", "block_6_expand_relu")),
    "resnet50": ("ResNet50", 255.0, -116.779, ("conv2_block3_out", "conv3_block4_out")),
}
SIMPLE_CNN_LAYERS = ("block2_relu", "block3_relu")


class FeatureError(ValueError):
    """A feature extractor that cannot be built (unknown layer, missing weights, ...)."""


@dataclass
class FeatureSpec:
    """Which backbone and layers; stored in run.json under "features"."""

    source: str
    layers: tuple[str, ...] = ()
    run: str | None = None
    application: str | None = None
    dim: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise FeatureError(f"unknown feature source {self.source!r}; choose {SOURCES}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layers": list(self.layers)}


def _resized_classifier(model, img_size: int, fresh: bool, seed: int):
    """The classifier's graph for (img_size, img_size, C) input, with its weights unless
    `fresh` (then newly initialised, seeded)."""
    import keras

    config = model.get_config()
    channels = model.input_shape[-1]
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, img_size, img_size, channels]
    keras.utils.set_random_seed(seed)
    rebuilt = keras.Model.from_config(config)
    if not fresh:
        rebuilt.set_weights(model.get_weights())
    return rebuilt


def _application(name: str, img_size: int, weights: str, channels: int = 1):
    import keras
    from keras import layers

    if name not in APPLICATIONS:
        raise FeatureError(f"unknown backbone {name!r}; choose one of {', '.join(APPLICATIONS)}")
    builder, scale, offset, _ = APPLICATIONS[name]
    inputs = keras.Input((img_size, img_size, channels), name="image")
    x = inputs
    if channels == 1:
        x = layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
    x = layers.Rescaling(scale, offset=offset, name="to_backbone_range")(x)
    try:
        net = getattr(keras.applications, builder)(
            include_top=False,
            weights=None if weights == "none" else weights,
            input_tensor=x,
            input_shape=(img_size, img_size, 3),
        )
    except Exception as exc:  # keras raises plain Exception/URLError/OSError when offline
        raise FeatureError(
            f"could not get ImageNet weights for {name} ({type(exc).__name__}): no internet? "
            f"put them in ~/.keras/models, or use --backbone-run RUN (a classifier run's features)"
        ) from exc
    return keras.Model(inputs, net.output, name=name)


def build_extractor(
    spec: FeatureSpec, img_size: int, backbone=None, seed: int = 0, channels: int = 1
):
    """The feature model (S, S, C) -> (h, w, D) for `spec`, without projection.

    `backbone` is the loaded classifier model for sources "run" and "random" (its input
    channels must be `channels`: 1 gray, 3 RGB).
    """
    import keras
    from keras import layers

    if spec.source == "imagenet":
        net = _application(spec.application or "", img_size, "imagenet", channels)
    else:
        if backbone is None:
            raise FeatureError("feature sources 'run' and 'random' need a classifier model")
        if int(backbone.input_shape[-1]) != channels:
            raise FeatureError(
                f"--backbone-run takes {backbone.input_shape[-1]}-channel images but --color "
                f"gives {channels}; use the run's colour (gray: 1 channel, rgb: 3)"
            )
        net = _resized_classifier(backbone, img_size, spec.source == "random", seed)
    names = spec.layers or (
        APPLICATIONS[spec.application][3] if spec.source == "imagenet" else SIMPLE_CNN_LAYERS
    )
    known = {layer.name for layer in net.layers}
    missing = [n for n in names if n not in known]
    if missing:
        raise FeatureError(
            f"backbone has no layer(s) {missing}; pick --feature-layers from its layers, e.g. "
            f"{', '.join(sorted(known)[:8])} ..."
        )
    outs = [net.get_layer(n).output for n in names]
    grid = min(int(o.shape[1]) for o in outs)
    parts = []
    for name, out in zip(names, outs, strict=True):
        x = layers.AveragePooling2D(3, strides=1, padding="same", name=f"agg_{name}")(out)
        side = int(out.shape[1])
        if side != grid:
            if side % grid:
                raise FeatureError(f"layer {name} ({side} px) is not a multiple of {grid} px")
            x = layers.AveragePooling2D(side // grid, name=f"pool_{name}")(x)
        parts.append(x)
    out = parts[0] if len(parts) == 1 else layers.Concatenate(name="patch_features")(parts)
    spec.layers = tuple(names)
    return keras.Model(net.inputs, out, name="patch_features")


def extract(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Patch features (N, h, w, D) of prepared images (N, S, S, 1), compiled predict step."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    out = [
        np.asarray(model.predict_on_batch(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    if not out:
        h = model.output_shape
        return np.zeros((0, *h[1:]), np.float32)
    return np.concatenate(out).astype(np.float32)


def with_projection(model, features: np.ndarray, dim: int, max_rows: int = 50_000, seed: int = 0):
    """`model` followed by a 1x1 convolution projecting onto the top `dim` principal components
    of good `features` (N, h, w, D); returns (new model, projected features)."""
    import keras
    from keras import layers

    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    if not 1 <= dim < flat.shape[1]:
        raise FeatureError(f"--feature-dim must be between 1 and {flat.shape[1] - 1}, got {dim}")
    rng = np.random.default_rng(seed)
    sample = flat[rng.choice(len(flat), min(max_rows, len(flat)), replace=False)]
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    w = vt[:dim].T.astype(np.float32)  # (D, dim)
    conv = layers.Conv2D(dim, 1, name="pca_projection")
    out = conv(model.output)
    conv.set_weights([w[None, None], (-mean @ w).astype(np.float32)])
    projected = (features.reshape(-1, features.shape[-1]) - mean.astype(np.float32)) @ w
    return (
        keras.Model(model.inputs, out, name="patch_features"),
        projected.reshape(*features.shape[:3], dim).astype(np.float32),
    )

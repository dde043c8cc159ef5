"""The convolutional autoencoder and its training-time losses.

The network only reconstructs; turning reconstruction error into maps, scores and decisions is
`anomaly.scoring`'s job. The losses are used at training time only: the saved model is loaded
with `compile=False`, so it never needs them.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

LOSSES = ("mse", "ssim", "mse+ssim")


class ModelConfigError(ValueError):
    """The requested autoencoder shape or loss is impossible."""


def _down(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 4, strides=2, padding="same", name=f"{name}_down")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_conv_act")(x)


def _up(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"{name}_up")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_conv_act")(x)


def build_autoencoder(
    img_size: int = 128, latent_dim: int = 8, filters: tuple[int, ...] = (16, 32, 64)
) -> keras.Model:
    """Encoder down to (img_size / 2**len(filters))² x latent_dim, then a mirrored decoder.

    The bottleneck stays spatial (a few latent channels per cell) because parts appear at any
    rotation and offset; a dense code would have to memorise every pose and reconstruct
    everything blurred. Few channels keep it from learning the identity, so defects are not
    rebuilt.
    """
    factor = 2 ** len(filters)
    if img_size < factor or img_size % factor:
        raise ModelConfigError(
            f"img_size {img_size} must be a multiple of {factor} (the encoder halves it "
            f"{len(filters)} times); try {max(factor, round(img_size / factor) * factor)}"
        )
    if latent_dim < 1:
        raise ModelConfigError(f"latent_dim must be at least 1, got {latent_dim}")
    inputs = keras.Input((img_size, img_size, 1), name="image")
    x = inputs
    for i, f in enumerate(filters, start=1):
        x = _down(x, f, f"enc{i}")
    x = layers.Conv2D(latent_dim, 1, name="latent")(x)
    x = layers.LeakyReLU(0.2, name="latent_act")(x)
    for i, f in enumerate(reversed(filters), start=1):
        x = _up(x, f, f"dec{i}")
    outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="conv_autoencoder")


def ssim_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """1 - SSIM per image: structure errors count even where intensities are close."""
    return 1.0 - tf.image.ssim(y_true, y_pred, max_val=1.0, filter_size=11, filter_sigma=1.5)


def mse_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(y_true - y_pred), axis=[1, 2, 3])


def mse_ssim_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """SSIM for structure plus MSE (scaled to a similar range) for intensity."""
    return ssim_loss(y_true, y_pred) + 10.0 * mse_loss(y_true, y_pred)


def get_loss(name: str):
    """The training loss for `--loss`."""
    table = {"mse": mse_loss, "ssim": ssim_loss, "mse+ssim": mse_ssim_loss}
    if name not in table:
        raise ModelConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return table[name]

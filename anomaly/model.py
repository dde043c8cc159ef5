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
MODELS = ("ae", "draem")


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
    _check_sizes(img_size, latent_dim, filters=filters)
    inputs = keras.Input((img_size, img_size, 1), name="image")
    outputs = _reconstruct(inputs, filters, latent_dim, prefix="")
    return keras.Model(inputs, outputs, name="conv_autoencoder")


def _check_sizes(img_size: int, latent_dim: int, **widths: tuple[int, ...]) -> None:
    """Each encoder halves the image once per width: the size must divide evenly."""
    for name, layer_widths in widths.items():
        factor = 2 ** len(layer_widths)
        if img_size < factor or img_size % factor:
            raise ModelConfigError(
                f"img_size {img_size} must be a multiple of {factor} ({name} halves it "
                f"{len(layer_widths)} times); try {max(factor, round(img_size / factor) * factor)}"
            )
    if latent_dim < 1:
        raise ModelConfigError(f"latent_dim must be at least 1, got {latent_dim}")


def _reconstruct(
    inputs: keras.KerasTensor, filters: tuple[int, ...], latent_dim: int, prefix: str
) -> keras.KerasTensor:
    """The spatial-bottleneck encoder-decoder; its output layer is always `reconstruction`."""
    x = inputs
    for i, f in enumerate(filters, start=1):
        x = _down(x, f, f"{prefix}enc{i}")
    x = layers.Conv2D(latent_dim, 1, name=f"{prefix}latent")(x)
    x = layers.LeakyReLU(0.2, name=f"{prefix}latent_act")(x)
    for i, f in enumerate(reversed(filters), start=1):
        x = _up(x, f, f"{prefix}dec{i}")
    return layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="reconstruction")(x)


def _unet_block(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_act1")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act2")(x)


def build_draem(
    img_size: int = 128,
    latent_dim: int = 16,
    filters: tuple[int, ...] = (16, 32, 64),
    seg_filters: tuple[int, ...] = (16, 32, 64),
) -> keras.Model:
    """DRAEM-lite (Zavrtanik et al., ICCV 2021): one model, two outputs.

    A reconstructive sub-network (the spatial-bottleneck autoencoder above, layers prefixed
    "rec_") restores good appearance; a discriminative U-Net (prefixed "seg_") looks at the image
    and its reconstruction side by side and segments what does not belong. Outputs:
    `reconstruction` (S, S, 1) and `anomaly_mask` (S, S, 1), both sigmoid. Trained on good images
    carrying simulated defects (`anomaly.pseudo_defects`); the mask is the anomaly map.
    """
    _check_sizes(img_size, latent_dim, filters=filters, seg_filters=seg_filters)
    inputs = keras.Input((img_size, img_size, 1), name="image")
    recon = _reconstruct(inputs, filters, latent_dim, prefix="rec_")

    x = layers.Concatenate(name="seg_input")([inputs, recon])
    skips = []
    for i, f in enumerate(seg_filters, start=1):
        x = _unet_block(x, f, f"seg_enc{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"seg_pool{i}")(x)
    x = _unet_block(x, seg_filters[-1] * 2, "seg_mid")
    for i, (f, skip) in enumerate(zip(reversed(seg_filters), reversed(skips), strict=True), 1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"seg_up{i}")(x)
        x = layers.Concatenate(name=f"seg_skip{i}")([x, skip])
        x = _unet_block(x, f, f"seg_dec{i}")
    # start from "rarely anomalous" (sigmoid(-3) = 0.05), as defects cover few pixels
    mask = layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(-3.0),
        name="anomaly_mask",
    )(x)
    return keras.Model(inputs, [recon, mask], name="draem")


def focal_dice_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Focal loss (gamma 2) on every pixel plus a soft Dice term over the batch's defects.

    Simulated defects cover well under 1 % of the pixels: focal loss keeps the many easy
    background pixels from dominating, Dice rewards getting the defect's extent right.
    """
    # no clipping: a clipped prediction has no gradient, and a mask stuck at 0 would stay there
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = -tf.reduce_mean(tf.square(1.0 - p_t) * tf.math.log(p_t + 1e-7))
    inter = tf.reduce_sum(y_true * y_pred)
    dice = 1.0 - (2.0 * inter + 1.0) / (tf.reduce_sum(y_true) + tf.reduce_sum(y_pred) + 1.0)
    return 20.0 * focal + 0.2 * dice


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

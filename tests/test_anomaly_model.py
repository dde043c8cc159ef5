"""The autoencoder's shape contract and its safe-mode round trip."""

import keras
import numpy as np
import pytest

from anomaly.model import ModelConfigError, build_autoencoder, get_loss


def test_autoencoder_reconstructs_at_input_size_in_unit_range():
    model = build_autoencoder(img_size=32, latent_dim=4, filters=(8, 8))
    out = model(np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32"))
    assert out.shape == (2, 32, 32, 1)
    assert float(np.min(out)) >= 0.0 and float(np.max(out)) <= 1.0


def test_image_size_must_survive_the_downsampling():
    with pytest.raises(ModelConfigError, match="multiple of 16"):
        build_autoencoder(img_size=100, filters=(8, 8, 8, 8))


def test_unknown_loss_is_refused_with_the_choices():
    with pytest.raises(ModelConfigError, match="mse, ssim, mse\\+ssim"):
        get_loss("l1")


@pytest.mark.slow  # trains
def test_model_trained_with_a_custom_loss_loads_in_safe_mode_without_it(tmp_path):
    model = build_autoencoder(img_size=32, latent_dim=4, filters=(8, 8))
    model.compile(optimizer="adam", loss=get_loss("mse+ssim"))
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    model.fit(x, x, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)

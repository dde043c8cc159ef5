"""The classifier zoo: grayscale in, softmax out, CAM layers, weights errors.

Saving and safe-mode loading of every family is covered end to end in test_classification_train.
"""

import keras
import numpy as np
import pytest

from classification.models import (
    MODEL_NAMES,
    ModelError,
    WeightsUnavailableError,
    build_model,
    cam_layer_name,
)


@pytest.mark.xdist_group("classification_models")
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_takes_gray_input_and_has_a_softmax_head(name):
    model = build_model(name, num_classes=3, img_size=32)
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    probs = np.asarray(model(x))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert len(model.get_layer(cam_layer_name(name)).output.shape) == 4


def test_simple_cnn_keeps_a_28x28_cam_map_at_224px():
    model = build_model("simple_cnn", num_classes=2, img_size=224)
    assert tuple(model.get_layer(cam_layer_name("simple_cnn")).output.shape[1:3]) == (28, 28)


def test_imagenet_weights_offline_fail_with_a_clear_message(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsUnavailableError) as caught:
        build_model("mobilenetv2", num_classes=2, img_size=96, weights="imagenet")
    message = str(caught.value)
    assert "could not download ImageNet weights for mobilenetv2" in message
    assert "--weights none" in message
    assert "~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in (
        message
    )


def test_simple_cnn_has_no_imagenet_weights():
    with pytest.raises(ModelError, match="use --weights none"):
        build_model("simple_cnn", num_classes=2, img_size=64, weights="imagenet")


def test_unknown_model_lists_the_choices():
    with pytest.raises(ModelError, match="simple_cnn, mobilenetv2, efficientnetb0, resnet50"):
        build_model("vgg16", num_classes=2, img_size=64)


def test_one_class_is_refused():
    with pytest.raises(ModelError, match="at least 2 classes"):
        build_model("simple_cnn", num_classes=1, img_size=64)

"""HiResCAM, XGradCAM and EigenCAM against hand computations from the activations."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import explain

SIZE = 16
pytestmark = pytest.mark.xdist_group("explain_cams")


@pytest.fixture(scope="module")
def model():
    """Conv (same padding, so the feature map is at input resolution) -> GAP -> softmax."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="feat")(inp)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, layers.Dense(3, activation="softmax", name="pred")(x))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(12).random((3, SIZE, SIZE, 1)).astype(np.float32)


def _acts_and_grads(model, images, target):
    """Activations of `feat` and d(logit of `target`)/d(activations), computed independently."""
    feat = keras.Model(model.inputs[0], model.get_layer("feat").output)
    dense = model.get_layer("pred")
    acts = tf.constant(feat(images))
    with tf.GradientTape() as tape:
        tape.watch(acts)
        logits = tf.matmul(tf.reduce_mean(acts, axis=(1, 2)), dense.kernel) + dense.bias
        score = tf.reduce_sum(logits[:, target])
    return acts.numpy(), tape.gradient(score, acts).numpy()


def _normalise(maps):
    maps = np.maximum(maps, 0)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.where(high > low, high - low, 1)


def test_hirescam_is_the_elementwise_product_summed_over_channels(model, images):
    acts, grads = _acts_and_grads(model, images, target=2)
    expected = _normalise((grads * acts).sum(-1))
    ours = explain.compute_cams(model, images, method="hirescam", layer="feat", class_index=2)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_hirescam_map_sums_to_the_class_logit_for_a_pooling_head(model, images):
    """Faithfulness: with GAP + dense, sum(grads * acts) = logit - bias, position by position."""
    acts, grads = _acts_and_grads(model, images, target=0)
    dense = model.get_layer("pred")
    pooled = acts.mean(axis=(1, 2))
    logit = pooled @ dense.kernel.numpy()[:, 0]
    raw = explain.compute_cams(
        model, images, method="hirescam", layer="feat", class_index=0, normalize=False
    )
    unclipped = (grads * acts).sum(-1)
    np.testing.assert_allclose(unclipped.sum(axis=(1, 2)), logit, rtol=1e-4)
    np.testing.assert_allclose(raw, np.maximum(unclipped, 0), atol=1e-5)


def test_xgradcam_weights_are_activation_normalised_gradient_sums(model, images):
    acts, grads = _acts_and_grads(model, images, target=1)
    weights = (grads * acts).sum(axis=(1, 2)) / (acts.sum(axis=(1, 2)) + 1e-7)
    expected = _normalise((weights[:, None, None, :] * acts).sum(-1))
    ours = explain.compute_cams(model, images, method="xgradcam", layer="feat", class_index=1)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_eigencam_is_the_first_principal_component_of_the_activations(model, images):
    acts, _ = _acts_and_grads(model, images, target=0)
    expected = []
    for a in acts:
        flat = a.reshape(-1, a.shape[-1])
        centred = flat - flat.mean(axis=0)
        projection = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        energy = flat.sum(-1) - flat.sum(-1).mean()
        if projection @ energy < 0:
            projection = -projection
        expected.append(projection.reshape(a.shape[:2]))
    ours = explain.compute_cams(model, images, method="eigencam", layer="feat")
    np.testing.assert_allclose(ours, _normalise(np.stack(expected)), atol=1e-4)


def test_eigencam_ignores_the_target_class(model, images):
    first = explain.compute_cams(model, images, method="eigencam", layer="feat", class_index=0)
    second = explain.compute_cams(model, images, method="eigencam", layer="feat", class_index=2)
    np.testing.assert_allclose(first, second)

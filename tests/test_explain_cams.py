"""compute_cams: shapes and ranges, the planted-square check, and agreement with tf-keras-vis."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from cam_reference import tf_keras_vis_raw
from keras import layers

import explain
from explain.cams import normalize_maps
from explain.tfkerasvis import tf_keras_vis_cams

SIZE = 32
FAST_OPTIONS = {"scorecam": {}, "smoothgrad": {"smooth_samples": 4}}
pytestmark = pytest.mark.xdist_group("explain_cams")


def square_detector(head: str = "softmax") -> keras.Model:
    """A model with hand-set weights that says "class 1" when it sees bright pixels.

    Channel 0 fires on bright 3x3 patches, channel 1 on dark ones; class 1's logit grows with
    the first and shrinks with the second.
    """
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    conv = layers.Conv2D(2, 3, padding="same", activation="relu", name="detector")
    feats = conv(inp)
    pooled = layers.GlobalAveragePooling2D(name="gap")(feats)
    units = 1 if head == "sigmoid" else 2
    dense = layers.Dense(units, activation=head, name="pred")
    model = keras.Model(inp, dense(pooled))
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[..., 0, 0], kernel[..., 0, 1] = 1 / 9, -1 / 9
    conv.set_weights([kernel, np.array([-0.5, 0.4], np.float32)])
    w = np.array([[100.0], [-1.0]], np.float32)
    if head == "sigmoid":
        dense.set_weights([w, np.array([0.0], np.float32)])
    else:
        dense.set_weights([np.concatenate([-w, w], axis=1), np.zeros(2, np.float32)])
    return model


def image_with_square(x0: int, y0: int, side: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.0, 0.3, (SIZE, SIZE, 1)).astype(np.float32)
    img[y0 : y0 + side, x0 : x0 + side] = 1.0
    return img


def random_cnn(classes: int = 3) -> keras.Model:
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="r2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, layers.Dense(classes, activation="softmax", name="pred")(x))


@pytest.fixture(scope="module")
def detector():
    return square_detector()


@pytest.fixture(scope="module")
def squares():
    corners = [(3, 4), (20, 22), (12, 2)]
    return np.stack([image_with_square(x, y, seed=i) for i, (x, y) in enumerate(corners)]), corners


@pytest.mark.parametrize("method", sorted(explain.METHODS))
def test_each_method_returns_float32_maps_in_unit_range_at_input_size(detector, squares, method):
    images, _ = squares
    cams = explain.compute_cams(detector, images, method=method, **FAST_OPTIONS.get(method, {}))
    assert cams.shape == (3, SIZE, SIZE)
    assert cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() == pytest.approx(1.0)


@pytest.mark.parametrize("method", sorted(explain.METHODS))
@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_heatmap_peak_lies_on_the_bright_square(squares, method, head):
    model = square_detector(head)
    images, corners = squares
    cams = explain.compute_cams(
        model, images, method=method, class_index=1, **FAST_OPTIONS.get(method, {})
    )
    for cam, (x0, y0) in zip(cams, corners, strict=True):
        y, x = np.unravel_index(np.argmax(cam), cam.shape)
        assert x0 - 1 <= x <= x0 + 6 and y0 - 1 <= y <= y0 + 6, (method, head, (x, y), (x0, y0))


def test_target_class_defaults_to_the_prediction(detector, squares):
    images, _ = squares
    cams, targets = explain.compute_cams(detector, images, return_targets=True)
    assert targets.tolist() == [1, 1, 1]
    np.testing.assert_allclose(cams, explain.compute_cams(detector, images, class_index=1))


def test_sigmoid_class_zero_explains_the_negated_unit(squares):
    model = square_detector("sigmoid")
    images, corners = squares
    cam = explain.compute_cams(model, images[:1], class_index=0)[0]
    x0, y0 = corners[0]
    # evidence for "no square" is the dark background, so the square itself is cold
    assert cam[y0 : y0 + 6, x0 : x0 + 6].mean() < cam.mean()


def test_constant_map_becomes_zeros():
    maps = normalize_maps(np.full((2, 4, 4), 3.0, np.float32)).numpy()
    assert not maps.any()


def test_tiny_but_structured_map_is_still_normalised():
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, 1, 2] = 1e-11
    assert normalize_maps(maps).numpy()[0, 1, 2] == pytest.approx(1.0)


def test_layers_are_listed_and_the_last_activated_conv_is_the_target():
    model = random_cnn()
    assert explain.candidate_layers(model) == ["c1", "c2", "bn2", "r2"]
    assert explain.find_target_layer(model) == "r2"


def test_unknown_layer_names_the_candidates():
    with pytest.raises(explain.ExplainError, match="'nope'.*valid layers: c1, c2, bn2, r2"):
        explain.compute_cams(random_cnn(), np.zeros((1, SIZE, SIZE, 1)), layer="nope")


def test_unknown_method_is_refused():
    with pytest.raises(explain.ExplainError, match="gradcam"):
        explain.compute_cams(random_cnn(), np.zeros((1, SIZE, SIZE, 1)), method="gradcam3")


def test_wrong_image_shape_is_refused():
    with pytest.raises(explain.ExplainError, match="Preprocess"):
        explain.compute_cams(random_cnn(), np.zeros((1, 16, 16, 1)))


def test_grayscale_batch_without_channel_axis_is_accepted(detector, squares):
    images, _ = squares
    np.testing.assert_allclose(
        explain.compute_cams(detector, images[..., 0]), explain.compute_cams(detector, images)
    )


# tf-keras-vis' Scorecam applies its own softmax, so it is compared on logits only.
EQUIVALENCE_CASES = [
    (method, score)
    for method in ("gradcam", "gradcam++", "layercam", "scorecam", "saliency")
    for score in ("logit", "probability")
    if (method, score) != ("scorecam", "probability")
]


@pytest.mark.parametrize(("method", "score"), EQUIVALENCE_CASES)
def test_fast_path_equals_tf_keras_vis_on_random_inputs(method, score):
    keras.utils.set_random_seed(1)
    model = random_cnn()
    images = np.random.default_rng(2).random((4, SIZE, SIZE, 1)).astype(np.float32)
    ours = explain.compute_cams(model, images, method=method, layer="c1", score=score)
    ref = tf_keras_vis_cams(model, images, method=method, layer="c1", score=score)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_fast_gradcam_equals_tf_keras_vis_before_upsampling_with_a_head_of_conv_layers():
    keras.utils.set_random_seed(3)
    model = random_cnn()
    images = np.random.default_rng(4).random((4, SIZE, SIZE, 1)).astype(np.float32)
    explainer = explain.get_explainer(model, "gradcam", "r2")
    raw, targets = explainer.raw_maps(tf.constant(images), tf.constant([-1] * 4))
    ours = normalize_maps(raw).numpy()
    np.testing.assert_allclose(
        ours, tf_keras_vis_raw(model, images, "r2", targets, logits=True), atol=1e-4
    )


def test_nested_backbone_gradcam_equals_tf_keras_vis_on_the_flat_backbone():
    """Our classifiers wrap a keras.applications backbone; tf-keras-vis can only see it flat."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((64, 64, 1), name="image")
    rgb = layers.Concatenate(name="to_rgb")([inp, inp, inp])
    scaled = layers.Rescaling(2.0, offset=-1.0, name="scale")(rgb)
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(64, 64, 3), alpha=0.35
    )
    gap, dense = layers.GlobalAveragePooling2D(name="gap"), layers.Dense(2, activation="softmax")
    wrapped = keras.Model(inp, dense(gap(backbone(scaled))))
    flat = keras.Model(backbone.input, dense(gap(backbone.output)))
    images = np.random.default_rng(6).random((2, 64, 64, 1)).astype(np.float32)
    flat_images = np.repeat(images * 2 - 1, 3, axis=-1)

    assert explain.find_target_layer(wrapped) == backbone.name
    for ours_layer, flat_layer in [(backbone.name, "out_relu"), ("block_13_expand_relu",) * 2]:
        explainer = explain.get_explainer(wrapped, "gradcam", ours_layer)
        raw, targets = explainer.raw_maps(tf.constant(images), tf.constant([-1, -1]))
        ref = tf_keras_vis_raw(flat, flat_images, flat_layer, targets, logits=True)
        np.testing.assert_allclose(normalize_maps(raw).numpy(), ref, atol=1e-4)
    cams = explain.compute_cams(wrapped, images, layer="block_13_expand_relu")
    assert cams.shape == (2, 64, 64)


def test_tf_keras_vis_backend_refuses_nested_backbones_with_a_clear_error():
    inp = keras.Input((SIZE, SIZE, 1))
    inner = random_cnn()
    model = keras.Model(inp, inner(inp))
    with pytest.raises(explain.ExplainError, match="nested"):
        explain.compute_cams(model, np.zeros((1, SIZE, SIZE, 1)), backend="tf-keras-vis")

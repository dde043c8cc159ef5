"""Every CAM method at sampled candidate layers of every zoo family (and each one against
tf-keras-vis on every other sampled layer of each route), a `.add()`-built
Sequential, a model sharing its layers with another, and layers inside a nested backbone.

The grid runs eagerly (`tf.config.run_functions_eagerly`): tracing one tf.function per
(method, layer) of ResNet50 would cost minutes; one compiled call per family checks that the
compiled fallback gives the same maps. Routes are checked against Keras itself: the fast split
is expected exactly where `keras.Model(target, output)` can be built.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from cam_reference import TKV, tf_keras_vis_raw
from keras import layers

import explain
from classification.models import build_model
from explain.cams import normalize_maps
from explain.layers import _graph, _node

SIZE = 32
N_LAYERS = 6
FAMILIES = ("simple_cnn", "mobilenetv2", "efficientnetb0", "resnet50")
LAYER_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam")
OPTIONS = {"scorecam": {"max_N": 2}, "smoothgrad": {"smooth_samples": 2}}
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("explain_zoo")]


@pytest.fixture(scope="module", autouse=True)
def eager():
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((2, SIZE, SIZE, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def zoo():
    keras.utils.set_random_seed(0)
    return {name: build_model(name, 2, SIZE) for name in FAMILIES}


def keras_can_cut(model, path: str) -> bool:
    """Whether Keras accepts `Model(target, output)`: the oracle for the fast route."""
    graph = _graph(model)
    target = _node(graph, graph.get_layer(path), path).output_tensors[0]
    try:
        keras.Model(target, graph.outputs[0])
    except ValueError:
        return False
    return True


def sample_layers(model) -> tuple[list[str], dict[str, bool]]:
    """N_LAYERS candidates spread from input to output, with at least 3 of each route where
    the family has them (the fallback ones sit inside residual blocks)."""
    names = explain.candidate_layers(model)
    cuttable = {n: keras_can_cut(model, n) for n in names}
    picked = [names[int(i)] for i in np.linspace(0, len(names) - 1, N_LAYERS)]
    for route in (True, False):
        extra = [n for n in names if cuttable[n] is route and n not in picked]
        while sum(cuttable[n] is route for n in picked) < 3 and extra:
            picked.append(extra.pop(len(extra) // 2))
    return picked, cuttable


@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_explains_sampled_layers_of_each_family(zoo, images, family):
    model = zoo[family]
    picked, cuttable = sample_layers(model)
    assert len(picked) >= N_LAYERS
    if family != "simple_cnn":
        assert sum(not cuttable[n] for n in picked) >= 3, "no residual-block layer sampled"
    # tf-keras-vis is the slow half: each method is compared with it on every other layer of
    # each route (so at least once inside a residual block), and checked by us on all of them.
    rank = {}
    for route in (True, False):
        rank.update({n: k for k, n in enumerate(n for n in picked if cuttable[n] is route)})
    routes, compared = {}, set()
    for layer in picked:
        for method in LAYER_METHODS:
            explainer = explain.get_explainer(
                model, method, layer, score="probability", **OPTIONS.get(method, {})
            )
            routes[layer] = explainer.route
            cams, targets = explain.compute_cams(
                model,
                images,
                method,
                layer,
                score="probability",
                return_targets=True,
                **OPTIONS.get(method, {}),
            )
            assert cams.shape == (2, SIZE, SIZE) and np.isfinite(cams).all(), (layer, method)
            assert cams.min() >= 0.0 and cams.max() <= 1.0
            if method in TKV and (rank[layer] + LAYER_METHODS.index(method)) % 2 == 0:
                compared.add((method, cuttable[layer]))
                raw, _ = explainer.raw_maps(tf.constant(images), tf.constant(targets))
                ref = tf_keras_vis_raw(model, images, layer, targets, method)
                np.testing.assert_allclose(
                    normalize_maps(raw).numpy(), ref, atol=1e-4, err_msg=f"{layer} {method}"
                )
    assert routes == {n: ("fast" if cuttable[n] else "fallback") for n in picked}
    assert compared == {(m, route) for m in TKV for route in {cuttable[n] for n in picked}}
    for method in ("saliency", "smoothgrad"):
        cams = explain.compute_cams(model, images, method, **OPTIONS.get(method, {}))
        assert cams.shape == (2, SIZE, SIZE) and np.isfinite(cams).all()


@pytest.mark.parametrize("family", ["mobilenetv2", "resnet50"])
def test_compiled_fallback_equals_the_eager_one(zoo, images, family):
    model = zoo[family]
    _, cuttable = sample_layers(model)
    layer = [n for n, ok in cuttable.items() if not ok][len(cuttable) // 4]
    eager = explain.compute_cams(model, images, "gradcam", layer)
    tf.config.run_functions_eagerly(False)
    try:
        explainer = explain.get_explainer(model, "gradcam", layer, jit_compile=False)
        assert explainer.route == "fallback"
        compiled = explainer(images)
    finally:
        tf.config.run_functions_eagerly(True)
    np.testing.assert_allclose(compiled, eager, atol=1e-4)


def added_sequential() -> keras.Sequential:
    """Built with .add(): every add rebuilds the graph, so each layer's node 0 is stale."""
    model = keras.Sequential(name="added")
    model.add(keras.Input((SIZE, SIZE, 1)))
    model.add(layers.Conv2D(6, 3, padding="same", name="c1"))
    model.add(layers.BatchNormalization(name="bn1"))
    model.add(layers.ReLU(name="r1"))
    model.add(layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2"))
    model.add(layers.GlobalAveragePooling2D(name="gap"))
    model.add(layers.Dense(3, activation="softmax", name="pred"))
    return model


def test_added_sequential_and_a_model_sharing_its_layers_explain_alike(images):
    keras.utils.set_random_seed(1)
    seq = added_sequential()
    assert len(seq.get_layer("c1")._inbound_nodes) > 1
    inp = keras.Input((SIZE, SIZE, 1))
    x = inp
    for layer in seq.layers:
        x = layer(x)
    shared = keras.Model(inp, x, name="shared")  # the same layer objects, a third graph
    assert explain.candidate_layers(seq) == ["c1", "bn1", "r1", "c2"]
    assert explain.find_target_layer(seq) == "c2"
    for method in (*LAYER_METHODS, "saliency", "smoothgrad"):
        for layer in ["c1", "r1", "c2"]:
            opts = OPTIONS.get(method, {})
            ours = explain.compute_cams(seq, images, method, layer, **opts)
            other = explain.compute_cams(shared, images, method, layer, **opts)
            assert explain.get_explainer(seq, method, layer, **opts).route == "fast"
            np.testing.assert_allclose(ours, other, atol=1e-5, err_msg=f"{method} {layer}")
            assert ours.max() == pytest.approx(1.0), (method, layer)


def test_residual_layer_inside_a_nested_backbone_equals_tf_keras_vis_on_the_flat_one(images):
    keras.utils.set_random_seed(5)
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    rgb = layers.Concatenate(name="to_rgb")([inp, inp, inp])
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), alpha=0.35
    )
    gap, dense = layers.GlobalAveragePooling2D(name="gap"), layers.Dense(2, activation="softmax")
    wrapped = keras.Model(inp, dense(gap(backbone(rgb))))
    flat = keras.Model(backbone.input, dense(gap(backbone.output)))
    rgb_images = np.repeat(images, 3, axis=-1)
    inner = "block_2_expand"  # block_1's output skips over it to block_2_add
    path = f"{backbone.name}/{inner}"
    assert path in explain.candidate_layers(wrapped)
    for method in TKV:
        explainer = explain.get_explainer(wrapped, method, inner, score="probability")
        assert explainer.layer == path and explainer.route == "fallback"
        raw, targets = explainer.raw_maps(tf.constant(images), tf.constant([-1, -1]))
        ref = tf_keras_vis_raw(flat, rgb_images, inner, targets, method)
        np.testing.assert_allclose(normalize_maps(raw).numpy(), ref, atol=1e-4, err_msg=method)


def test_bad_layers_and_options_are_named_with_the_valid_ones(zoo, images):
    model = zoo["mobilenetv2"]
    with pytest.raises(explain.ExplainError, match=r"'gap'.*no spatial.*valid layers: Conv1"):
        explain.compute_cams(model, images, layer="gap")
    with pytest.raises(explain.ExplainError, match=r"'block_99_add'.*no such layer.*in all"):
        explain.compute_cams(model, images, layer="block_99_add")
    with pytest.raises(explain.ExplainError, match=r"gradcam has no option 'max_n'.*jit_compile"):
        explain.compute_cams(model, images, layer="Conv1", max_n=3)
    with pytest.raises(explain.ExplainError, match=r"scorecam has no option 'smooth_samples'"):
        explain.compute_cams(model, images, "scorecam", smooth_samples=3)
    with pytest.raises(explain.ExplainError, match="smooth_samples must be a positive integer"):
        explain.compute_cams(model, images, "smoothgrad", smooth_samples=0)
    with pytest.raises(explain.ExplainError, match="has no option 'typo'"):
        explain.compute_cams(model, images, backend="tf-keras-vis", typo=1)

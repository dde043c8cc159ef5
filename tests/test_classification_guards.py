"""Guard rails and BatchNorm recalibration for small data sets (issue #21), on tiny models."""

import keras
import numpy as np
import pytest

import store
from classification.batchnorm import (
    RecalibrateBatchNorm,
    batchnorm_layers,
    moving_statistics,
    recalibrate_batchnorm,
)
from classification.guards import (
    GuardError,
    assess_classifier,
    check_classifier,
    mode_gap,
    operating_point_collapse,
    prediction_collapse,
)
from classification.models import build_model

CLASSES = ["ok_front", "def_front"]


def _bright_dark(n: int = 16, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Half dark images (class 0), half bright ones (class 1), with noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = np.where(y[:, None, None, None] == 1, 0.8, 0.2) + rng.normal(0, 0.05, (n, size, size, 1))
    return x.astype("float32"), y


def _brightness_model(size: int = 8, collapse: bool = False) -> keras.Model:
    """Class 1 when the mean brightness is above 0.5; with `collapse`, class 1 always."""
    inputs = keras.Input((size, size, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((1, 2)) if collapse else np.array([[-20.0, 20.0]])
    bias = np.array([-10.0, 10.0]) if collapse else np.array([10.0, -10.0])
    model.layers[-1].set_weights([kernel.astype("float32"), bias.astype("float32")])
    return model


def _bn_model(size: int = 8) -> keras.Model:
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _input_statistics(model: keras.Model, layer: str, x: np.ndarray):
    """Per-channel mean and variance of what BatchNorm `layer` receives from the data."""
    features = keras.Model(model.input, model.get_layer(layer).input).predict(x, verbose=0)
    return features.mean(axis=(0, 1, 2)), features.var(axis=(0, 1, 2))


# ------------------------------------------------------------------- collapse guard


def test_collapse_guard_fires_on_a_model_made_to_predict_one_class():
    x, y = _bright_dark()
    model = _brightness_model(collapse=True)
    health = assess_classifier(model, x, y, x, y, CLASSES, {"accuracy": [0.5]}, 1)
    assert health.checks["validation"]["collapsed"] is True
    assert health.checks["validation"]["predicted_counts"] == {"ok_front": 0, "def_front": 16}
    assert not health.ok
    assert any("collapse to one class" in w and "'def_front'" in w for w in health.warnings)


def test_collapse_guard_stays_quiet_on_a_good_model():
    x, y = _bright_dark()
    model = _brightness_model()
    health = assess_classifier(model, x, y, x, y, CLASSES, {"accuracy": [0.9, 1.0]}, 2)
    assert health.ok, health.warnings
    assert health.checks["validation"]["collapsed"] is False
    assert health.checks["train_accuracy_inference"] == pytest.approx(1.0)
    assert health.checks["mode_gap"] == pytest.approx(0.0)


def test_a_threshold_that_calls_everything_defective_is_flagged():
    """A model whose most probable class is right can still decide one way for every part at
    its operating point: a weak model's best F1 is often "everything defective"."""
    x, y = _bright_dark()
    model = _brightness_model()  # argmax is perfect
    history = {"accuracy": [1.0]}
    health = assess_classifier(
        model, x, y, x, y, CLASSES, history, 1, normal="ok_front", threshold=1e-12
    )
    assert health.checks["validation"]["collapsed"] is False
    at_threshold = health.checks["operating_point"]
    assert at_threshold["collapsed"] is True
    assert at_threshold["predicted_counts"] == {"good": 0, "defective": 16}
    assert at_threshold["true_counts"] == {"good": 8, "defective": 8}
    (warning,) = health.warnings
    assert "calls 100% of 16 validation images defective, which is 50% of their labels" in warning
    assert "--init-from RUN" in warning
    # the same model at a sensible threshold, and at one that calls everything good
    assert assess_classifier(
        model, x, y, x, y, CLASSES, history, 1, normal="ok_front", threshold=0.5
    ).ok
    checks, warning = operating_point_collapse(
        y, model.predict(x, verbose=0), CLASSES, "ok_front", 1.1
    )
    assert checks["collapsed"] is True and "images good, which is 50%" in warning


def test_operating_point_guard_names_an_unknown_normal_class():
    with pytest.raises(GuardError, match="normal class 'good'"):
        operating_point_collapse([0, 1], np.full((2, 2), 0.5), CLASSES, "good", 0.5)


def test_a_set_that_really_is_one_class_is_not_a_collapse():
    checks, warning = prediction_collapse([1] * 19 + [0], [1] * 20, CLASSES)
    assert warning is None and checks["collapsed"] is False


def test_mostly_one_class_predictions_count_as_collapse():
    truth = [0] * 12 + [1] * 16
    predicted = [1] * 27 + [0]
    checks, warning = prediction_collapse(truth, predicted, CLASSES)
    assert checks["collapsed"] is True
    assert "96% of 28 validation images" in warning


def test_mode_gap_guard_fires_only_on_a_large_gap():
    checks, warning = mode_gap(0.56, 0.91)
    assert checks["mode_gap"] == pytest.approx(0.35)
    assert "0.56" in warning and "0.91" in warning
    assert mode_gap(0.85, 0.91)[1] is None
    assert mode_gap(0.60, None) == ({"train_accuracy_inference": 0.6}, None)


def test_guard_inputs_that_do_not_fit_are_named():
    with pytest.raises(GuardError, match="3 labels but 2 predictions"):
        prediction_collapse([0, 1, 1], [0, 1], CLASSES)
    with pytest.raises(GuardError, match="0..1"):
        prediction_collapse([0, 2], [0, 1], CLASSES)
    with pytest.raises(GuardError, match="y_true"):
        check_classifier([], np.zeros((0, 2)), [0], np.zeros((1, 2)), CLASSES, None)


def test_health_record_round_trips_through_run_json(tmp_path):
    record = store.health_record(["predictions collapse"], {"mode_gap": 0.3})
    assert record["ok"] is False and record["checks"] == {"mode_gap": 0.3}
    assert record["warnings"] == ["predictions collapse"]
    run_dir = store.create_run_dir("flagged", root=tmp_path)
    store.write_run_info(run_dir, {"kind": "classifier", "health": record})
    assert store.load_run(run_dir).warnings == ["predictions collapse"]
    assert store.run_warnings({"kind": "classifier"}) == []  # runs from before the guards
    with pytest.raises(ValueError, match="list of non-empty sentences"):
        store.health_record("one string", {})


# ------------------------------------------------------------- BatchNorm statistics


def test_recalibrated_statistics_match_the_training_data():
    x, y = _bright_dark(n=32, seed=1)
    model = _bn_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    trainable = [w.copy() for w in (keras.ops.convert_to_numpy(v) for v in model.trainable_weights)]
    mean, var = _input_statistics(model, "bn", x)
    before_mean, before_var = moving_statistics(model)["bn"]
    # After 4 steps the moving averages still hold most of their initial 0 / 1: far off.
    assert not np.allclose(before_var, var, rtol=0.2)

    used = recalibrate_batchnorm(model, [x])  # one batch holding the whole training set
    assert used == 1
    after_mean, after_var = moving_statistics(model)["bn"]
    np.testing.assert_allclose(after_mean, mean, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(after_var, var, rtol=1e-3, atol=1e-6)
    # One batch of everything: the first layer's batch statistics are now its moving ones, so
    # the second layer also receives in inference mode exactly what it was calibrated on.
    mean2, var2 = _input_statistics(model, "bn2", x)
    np.testing.assert_allclose(moving_statistics(model)["bn2"][0], mean2, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(moving_statistics(model)["bn2"][1], var2, rtol=1e-3, atol=1e-6)
    assert all(layer.momentum == 0.9 for layer in batchnorm_layers(model))
    for before, after in zip(trainable, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))


def test_several_batches_average_to_the_batch_statistics():
    x, _ = _bright_dark(n=16, seed=2)
    model = _bn_model()
    recalibrate_batchnorm(model, [(x[:8], None), (x[8:], None)])
    halves = [_input_statistics(model, "bn", part) for part in (x[:8], x[8:])]
    mean, var = moving_statistics(model)["bn"]
    np.testing.assert_allclose(mean, (halves[0][0] + halves[1][0]) / 2, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(var, (halves[0][1] + halves[1][1]) / 2, rtol=1e-3, atol=1e-6)


def test_a_short_last_batch_counts_by_its_images():
    x, _ = _bright_dark(n=16, seed=4)
    model = _bn_model()
    recalibrate_batchnorm(model, [x[:12], x[12:]])
    parts = [_input_statistics(model, "bn", part) for part in (x[:12], x[12:])]
    mean, var = moving_statistics(model)["bn"]
    np.testing.assert_allclose(mean, _input_statistics(model, "bn", x)[0], rtol=1e-3, atol=1e-5)
    weighted = (12 * parts[0][1] + 4 * parts[1][1]) / 16
    np.testing.assert_allclose(var, weighted, rtol=1e-3, atol=1e-6)


def test_recalibration_limits_the_number_of_batches():
    x, _ = _bright_dark(n=16)
    assert recalibrate_batchnorm(_bn_model(), [x[:4], x[4:8], x[8:12]], max_batches=2) == 2
    assert recalibrate_batchnorm(_brightness_model(), [x]) == 0  # no BatchNorm: untouched


def test_callback_leaves_fit_with_statistics_of_the_training_data():
    x, y = _bright_dark(n=32, seed=3)
    model = _bn_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    callback = RecalibrateBatchNorm([x])
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), callbacks=[callback], verbose=0)
    mean, var = _input_statistics(model, "bn", x)
    after_mean, after_var = moving_statistics(model)["bn"]
    np.testing.assert_allclose(after_mean, mean, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(after_var, var, rtol=1e-3, atol=1e-6)


def test_nested_backbone_batchnorm_layers_are_found():
    model = build_model("mobilenetv2", 2, 32)
    names = [layer.name for layer in batchnorm_layers(model)]
    assert len(names) > 30 and len(set(names)) == len(names)

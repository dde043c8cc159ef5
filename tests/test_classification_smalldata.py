"""The small-data training recipe (issue #21): steps, epoch selection, validation size, and
the guard rails' verdict in run.json and the CLI summary."""

import json

import cv2
import keras
import numpy as np
import pytest

import store
from classification import train as train_module
from classification import training as training_module
from classification.augment import get_recipe
from classification.batchnorm import moving_statistics
from classification.guards import Health
from classification.models import build_model
from classification.smalldata import (
    MIN_VAL_PER_CLASS,
    MIN_VAL_TO_SELECT,
    SMALL_SET,
    epoch_selection,
    small_set_recipe,
    steps_per_epoch,
    val_fraction,
)
from classification.splits import classifier_splits
from classification.transfer import TransferError, init_from_run
from imaging import Preprocess, discover, load_images

pytestmark = pytest.mark.xdist_group("classification_train")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """12 + 12 training and 4 + 4 test images: dark disks (ok) and disks with a bright bar."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for label in ("ok_front", "def_front"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 30, (40, 40), dtype=np.uint8)
                cv2.circle(img, (20, 20), 15, 120, -1)
                if label == "def_front":
                    cv2.line(img, (12, 14), (28, 22), 255, 3)
                cv2.imwrite(str(folder / f"{i:02d}.png"), img)
    return root


def _argv(data, *extra):
    return ["--data", str(data), "--epochs", "2", "--img-size", "32", "--batch-size", "8", *extra]


def test_small_sets_get_at_least_min_steps_per_epoch():
    assert steps_per_epoch(163, 32) == 30
    assert steps_per_epoch(1359, 32) == 43  # the demo set: one pass, as before
    assert steps_per_epoch(163, 32, min_steps=0) == 6
    with pytest.raises(ValueError, match="--min-steps -1"):
        steps_per_epoch(163, 32, min_steps=-1)


def test_a_tiny_validation_set_does_not_choose_the_epoch():
    small = epoch_selection(28)
    assert not small.restore_best and "28 validation images are too few" in small.reason
    assert small.kept_epoch([0.7, 0.5, 0.9], 3) == 3
    large = epoch_selection(MIN_VAL_TO_SELECT)
    assert large.restore_best and large.kept_epoch([0.7, 0.5, 0.9], 3) == 2


def test_validation_fraction_keeps_a_minimum_per_class():
    assert val_fraction({"ok": 590, "def": 769}, 0.15) == 0.15
    raised = val_fraction({"ok": 40, "def": 56}, 0.15)
    assert raised == pytest.approx(MIN_VAL_PER_CLASS / 40)
    assert val_fraction({"ok": 5, "def": 56}, 0.15) == 0.3  # capped: training needs images


def test_small_sets_get_flips_added_to_a_recipe_without_them():
    basic = get_recipe("basic")
    extended, note = small_set_recipe(basic, 163)
    assert extended.name == "basic+flips" and "163 training images" in note
    names = [type(t).__name__ for t in extended.transforms()]
    assert names == ["HorizontalFlip", "VerticalFlip", "RandomRotate90"]
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    draws = {extended.transform(image, rng=seed).tobytes() for seed in range(12)}
    assert len(draws) > 1  # really random: several of the eight symmetries drawn
    crop, _ = small_set_recipe(get_recipe("crop"), 163)
    assert crop.preprocess_overrides == get_recipe("crop").preprocess_overrides


@pytest.mark.parametrize(
    ("recipe", "n_train", "enabled"),
    [("basic", SMALL_SET, True), ("basic", 163, False), ("flip", 163, True), ("heavy", 80, True)],
)
def test_large_sets_switched_off_or_flipping_recipes_are_left_alone(recipe, n_train, enabled):
    original = get_recipe(recipe)
    assert small_set_recipe(original, n_train, enabled) == (original, None)


@pytest.mark.slow
def test_run_json_records_the_recipe_and_a_clean_health(tiny_set, capsys):
    assert train_module.main(_argv(tiny_set, "--name", "clean", "--min-steps", "3")) == 0
    out = capsys.readouterr().out
    assert "training images from scratch" in out and "--init-from RUN" in out
    run = store.load_run("clean")
    assert run.info["steps_per_epoch"] == 3
    assert run.info["aug"] == "basic" and run.info["aug_effective"] == "basic+flips"
    assert any("flips and quarter turns added" in n for n in run.info["data"]["split_notes"])
    assert "last epoch" in run.info["epoch_selection"]
    assert run.info["best_epoch"] == run.info["epochs_run"] == 2
    health = run.info["health"]
    assert set(health) == {"ok", "warnings", "checks"}
    assert health["ok"] is (not health["warnings"])
    assert sum(health["checks"]["validation"]["predicted_counts"].values()) == sum(
        run.info["data"]["counts"]["val"].values()
    )
    assert 0.0 <= health["checks"]["train_accuracy_inference"] <= 1.0
    at_threshold = health["checks"]["operating_point"]
    assert at_threshold["threshold"] == pytest.approx(run.info["threshold"], abs=1e-6)
    assert sum(at_threshold["predicted_counts"].values()) == sum(
        run.info["data"]["counts"]["val"].values()
    )
    json.dumps(run.info)  # plain JSON


@pytest.mark.slow
def test_the_saved_model_normalises_with_statistics_of_its_training_images(tiny_set):
    """End to end: train.py's model.keras holds BatchNorm statistics of its training split."""
    assert train_module.main(_argv(tiny_set, "--name", "bn", "--min-steps", "4")) == 0
    run = store.load_run("bn")
    spec, _ = classifier_splits(discover(str(tiny_set)), seed=run.info["seed"])
    paths = list(spec.split("train").path)
    x, errors = load_images(paths, Preprocess.from_dict(run.info["preprocess"]))
    assert not errors and len(x) == sum(run.info["data"]["counts"]["train"].values())
    model = run.load_model()
    stem = keras.Model(model.input, model.get_layer("stem_bn").input).predict(x, verbose=0)
    mean, var = moving_statistics(model)["stem_bn"]
    np.testing.assert_allclose(mean, stem.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4)
    # Within-batch variances, averaged: a little below the variance over all images.
    ratio = var / stem.var(axis=(0, 1, 2))
    assert np.all(ratio > 0.7) and np.all(ratio < 1.01), ratio


@pytest.mark.slow
def test_a_flagged_run_warns_in_the_summary_and_in_run_json(tiny_set, capsys, monkeypatch):
    flagged = Health(checks={"mode_gap": 0.4}, warnings=["predictions collapse to one class"])
    monkeypatch.setattr(training_module, "assess_classifier", lambda *a, **k: flagged)
    assert train_module.main(_argv(tiny_set, "--name", "flagged", "--min-steps", "0")) == 0
    err = capsys.readouterr().err
    assert "WARNING: predictions collapse to one class" in err
    assert "docs/small-data.md" in err
    run = store.load_run("flagged")
    assert run.warnings == ["predictions collapse to one class"]
    assert run.info["health"]["ok"] is False


def test_negative_min_steps_is_refused_in_one_line(tiny_set, capsys):
    assert train_module.main(_argv(tiny_set, "--min-steps", "-2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-steps -2" in err[0]
    assert store.list_runs() == []


# ------------------------------------------------------------------- --init-from RUN


def _source_run(name: str = "donor", model: str = "simple_cnn", classes: int = 2) -> keras.Model:
    source = build_model(model, classes, 32)
    run_dir = store.create_run_dir(name)
    store.save_model(run_dir, source)
    store.write_run_info(run_dir, {"kind": "classifier", "model": model})
    return source


def test_init_from_copies_the_backbone_and_a_fitting_head():
    source = _source_run()
    target = build_model("simple_cnn", 2, 48)  # another input size: conv weights still fit
    record = init_from_run(target, "simple_cnn", "donor")
    assert record["run"] == "donor" and record["head_copied"] is True
    for name in ("stem_conv", "block3_bn", "last_conv", "predictions"):
        for got, want in zip(
            target.get_layer(name).get_weights(), source.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want)


def test_init_from_leaves_a_head_for_other_classes_new():
    source = _source_run()
    target = build_model("simple_cnn", 3, 32)
    record = init_from_run(target, "simple_cnn", "donor")
    assert record["head_copied"] is False and record["layers_copied"] > 5
    np.testing.assert_array_equal(
        target.get_layer("last_conv").get_weights()[0],
        source.get_layer("last_conv").get_weights()[0],
    )


def test_init_from_refuses_another_model_family_or_a_missing_run(tiny_set, capsys):
    _source_run()
    with pytest.raises(TransferError, match="pick a classifier run of --model mobilenetv2"):
        init_from_run(build_model("mobilenetv2", 2, 32), "mobilenetv2", "donor")
    assert train_module.main(_argv(tiny_set, "--init-from", "nowhere", "--min-steps", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init-from nowhere" in err[0] and "donor" in err[0]


@pytest.mark.slow
def test_a_run_trained_from_another_records_it(tiny_set, capsys):
    _source_run()
    argv = _argv(tiny_set, "--init-from", "donor", "--name", "child", "--min-steps", "0")
    assert train_module.main(argv) == 0
    assert "from scratch" not in capsys.readouterr().out
    assert store.load_run("child").info["init_from"]["run"] == "donor"

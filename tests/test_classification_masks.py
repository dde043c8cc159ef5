"""Mask supervision (issue #21): defect masks as a second training signal for the classifier.

Hand-made masks and grids check the preparation, the grid targets and the loss; a tiny masked
data set checks train.py end to end; every zoo family gets its mask head on its CAM layer.
"""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from masked_sets import write_masked_set, write_unmasked_set

import store
from classification import train as train_module
from classification.augment import get_recipe
from classification.masksup import (
    MIN_MASKED,
    POSITIVE_WEIGHT,
    UNKNOWN,
    MaskSupervisionError,
    grid_targets,
    mask_loss,
    plan_mask_supervision,
    prepare_mask,
    prepare_masks,
    with_mask_head,
)
from classification.models import MODEL_NAMES, build_model, cam_layer_name
from classification.smalldata import SMALL_SET, small_set_recipe
from imaging import Preprocess, make_tf_dataset

pytestmark = pytest.mark.xdist_group("classification_train")


def _items(n_good: int, n_masked: int, n_unmasked: int, mask: str = "m.png"):
    import pandas as pd

    rows = [("ok", None)] * n_good + [("def", mask)] * n_masked + [("def", None)] * n_unmasked
    return pd.DataFrame(rows, columns=["label", "mask_path"])


def test_auto_turns_mask_supervision_on_for_small_masked_sets_only():
    plan, note = plan_mask_supervision(_items(70, 90, 3), "ok", "auto", "last_conv", "small")
    assert (plan.masked, plan.unmasked, plan.good, plan.layer) == (90, 3, 70, "last_conv")
    assert "163 training images" in note and "--masks off" in note
    assert plan_mask_supervision(_items(300, SMALL_SET, 0), "ok", "auto", "l", "big") == (
        None,
        None,
    )
    few = _items(70, MIN_MASKED - 1, 80)
    assert plan_mask_supervision(few, "ok", "auto", "l", "few") == (None, None)
    assert plan_mask_supervision(_items(70, 90, 0), "ok", "off", "l", "x") == (None, None)
    forced, _ = plan_mask_supervision(_items(300, SMALL_SET, 0), "ok", "on", "l", "big")
    assert forced.masked == SMALL_SET


def test_masks_on_without_masks_and_an_unknown_mode_are_refused_by_name():
    with pytest.raises(
        MaskSupervisionError,
        match="--masks on: no defective training image in data/plain has a defect mask",
    ):
        plan_mask_supervision(_items(10, 0, 10), "ok", "on", "l", "data/plain")
    with pytest.raises(
        MaskSupervisionError, match="--masks 'sometimes': choose one of auto, on, off"
    ):
        plan_mask_supervision(_items(10, 10, 0), "ok", "sometimes", "l", "x")


def test_a_thin_defect_survives_crop_and_downsizing(tmp_path):
    mask = np.zeros((300, 300), np.uint8)
    mask[150, 100:200] = 255  # a one-pixel scratch
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    prepared = prepare_mask(str(path), Preprocess(size=64, crop=0.5))
    # The 0.5 crop keeps rows and columns 75..224; the scratch lands on row (150-75)*64/150 = 32.
    assert prepared.dtype == np.uint8 and prepared.shape == (64, 64)
    rows, cols = np.nonzero(prepared)
    assert set(rows) <= {31, 32} and cols.min() <= 11 and cols.max() >= 52
    assert set(np.unique(prepared)) == {0, 1}


def test_an_unreadable_mask_is_named_with_the_fix(tmp_path):
    bad = tmp_path / "bad_mask.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(MaskSupervisionError, match=r"bad_mask\.png.*--masks off"):
        prepare_mask(str(bad), Preprocess(size=32))


def test_good_images_are_background_and_unmasked_defects_unknown(tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[4:8, 4:8] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    items = _items(1, 1, 1, mask=str(tmp_path / "m.png"))
    out = prepare_masks(items, "ok", Preprocess(size=16))
    assert out.shape == (3, 16, 16)
    assert not out[0].any()
    assert out[1].sum() == 4 and out[1][2:4, 2:4].all()
    assert np.all(out[2] == UNKNOWN)


def test_grid_targets_mark_any_defect_pixel_per_cell_and_unknown_as_minus_one():
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 5, 6] = 1  # one pixel in cell (1, 1) of a 2 x 2 grid of 4 x 4 cells
    masks[1] = UNKNOWN
    targets = grid_targets(tf.constant(masks), (2, 2)).numpy()
    assert targets.shape == (2, 2, 2, 1)
    np.testing.assert_array_equal(targets[0, ..., 0], [[0, 0], [0, 1]])
    np.testing.assert_array_equal(targets[1], -np.ones((2, 2, 1)))


def test_grid_targets_fit_a_grid_that_does_not_divide_the_image():
    masks = np.zeros((1, 10, 10), np.uint8)
    masks[0, 9, 0] = 1  # bottom-left pixel
    targets = grid_targets(tf.constant(masks), (3, 3)).numpy()[0, ..., 0]
    assert targets.shape == (3, 3) and targets[2, 0] == 1 and targets.sum() == 1


def test_mask_loss_is_weighted_cross_entropy_over_known_cells():
    y_true = np.array([[[[1.0], [0.0]]], [[[-1.0], [-1.0]]]], np.float32)  # (2, 1, 2, 1)
    y_pred = np.array([[[[0.8], [0.3]]], [[[0.9], [0.1]]]], np.float32)
    bce_pos, bce_neg = -np.log(0.8), -np.log(0.7)
    expected = (POSITIVE_WEIGHT * bce_pos + bce_neg) / 2  # the unknown image adds nothing
    got = float(mask_loss(tf.constant(y_true), tf.constant(y_pred)))
    assert got == pytest.approx(expected, rel=1e-4)
    nothing_known = -np.ones((1, 1, 2, 1), np.float32)
    assert float(mask_loss(tf.constant(nothing_known), tf.constant(y_pred[:1]))) == 0.0


def test_flips_move_the_mask_with_the_image_in_the_pipeline(tmp_path):
    """The image is the mask drawn in white: after any draw they must still coincide."""
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 16, 16), np.uint8)
    images = []
    for i, m in enumerate(masks):
        y, x = rng.integers(0, 12, 2)
        m[y : y + 4, x : x + 2] = 1  # asymmetric, so a flip shows
        images.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(images[-1]), m * 255)
    recipe, _ = small_set_recipe(get_recipe("noise"), 6)
    ds = make_tf_dataset(
        images,
        np.zeros(6, np.int64),
        Preprocess(size=16),
        batch_size=6,
        shuffle=True,
        augment=recipe.pair_augmenter(),
        masks=masks,
    )
    moved = 0
    for _ in range(3):
        x, (_, m) = next(iter(ds))
        x, m = x.numpy()[..., 0], m.numpy()
        assert np.all((x > 0.3) == (m == 1)) or np.abs((x > 0.3) ^ (m == 1)).mean() < 0.02
        moved += sum(not any(np.array_equal(k, orig) for orig in masks) for k in m)
    assert moved > 0  # some draws really flipped or turned


def test_masks_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="masks must be uint8"):
        make_tf_dataset(["unused.png"], [0], Preprocess(size=16), masks=np.zeros((1, 8, 8)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_zoo_family_gets_a_mask_head_on_its_cam_layer_and_trains(name):
    keras.utils.set_random_seed(0)
    model = build_model(name, 2, 64)
    pair, grid = with_mask_head(model, cam_layer_name(name))
    assert grid == tuple(model.get_layer(cam_layer_name(name)).output.shape[1:3])
    # The mask loss alone: its gradient must reach the classifier's own convolutions.
    pair.compile("adam", ["sparse_categorical_crossentropy", mask_loss], loss_weights=[0.0, 1.0])
    x = np.random.default_rng(0).random((2, 64, 64, 1)).astype(np.float32)
    targets = np.zeros((2, *grid, 1), np.float32)
    targets[1, 0, 0] = 1
    shared = [w for w in model.trainable_weights if not w.path.startswith("predictions")]
    before = [np.array(w.numpy()) for w in shared]
    pair.train_on_batch(x, (np.array([0, 1]), targets))
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, shared, strict=True)]
    assert sum(changed) > len(shared) // 2
    assert "mask_head" not in {layer.name for layer in model.layers}  # the classifier is unchanged


@pytest.fixture(scope="module")
def masked_set(tmp_path_factory):
    """A class-folder set with annotations.csv masks: disks, the defective ones with a bar."""

    def bar(mask, rng):
        y = int(rng.integers(10, 28))
        cv2.line(mask, (12, y), (28, y + 4), 255, 3)

    counts = {"train": 14, "test": 4}
    return write_masked_set(tmp_path_factory.mktemp("masked"), counts, 40, (15, 120), bar, seed=1)


def _argv(data, *extra):
    return ["--data", str(data), "--epochs", "2", "--img-size", "32", "--batch-size", "8", *extra]


@pytest.mark.slow
def test_train_py_uses_the_masks_of_a_small_set_and_saves_a_plain_classifier(masked_set, capsys):
    assert train_module.main(_argv(masked_set, "--name", "masked", "--min-steps", "3")) == 0
    out = capsys.readouterr().out
    assert "training images from scratch" not in out  # the memorising hint is not for this run
    run = store.load_run("masked")
    record = run.info["mask_supervision"]
    assert record["layer"] == "last_conv" and record["grid"] == [4, 4]
    assert (
        record["masked"]
        == sum(1 for _ in (masked_set / "masks").glob("train_*.png"))
        - (run.info["data"]["counts"]["val"]["def_front"])
    )
    assert any("mask supervision" in n for n in run.info["data"]["split_notes"])
    history = (run.path / "history.csv").read_text().splitlines()[0].split(",")
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "mask_loss", "val_mask_loss"):
        assert column in history
    model = run.load_model()
    assert "mask_head" not in {layer.name for layer in model.layers}
    assert model.output_shape == (None, 2)
    json.dumps(run.info)


@pytest.mark.slow
def test_masks_off_trains_on_labels_alone(masked_set):
    argv = _argv(masked_set, "--name", "unmasked", "--min-steps", "2", "--masks", "off")
    assert train_module.main(argv) == 0
    run = store.load_run("unmasked")
    assert run.info["mask_supervision"] is None
    assert "mask_loss" not in (run.path / "history.csv").read_text().splitlines()[0]


def test_masks_on_for_a_set_without_masks_is_one_line_and_exit_2(tmp_path, capsys):
    write_unmasked_set(tmp_path, 20)
    assert train_module.main(_argv(tmp_path, "--masks", "on", "--name", "nomask")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--masks on: no defective training image" in err[0]
    assert "nomask" not in {r.name for r in store.list_runs()}

"""Preprocess: the recorded preparation replayed identically, and mapped back to the original."""

from collections import namedtuple

import numpy as np
import pytest

from imaging import Preprocess, PreprocessError


def test_prepare_makes_square_gray_uint8_from_any_image():
    rgb = np.zeros((60, 90, 3), np.uint8)
    out = Preprocess(size=32).prepare(rgb)
    assert out.shape == (32, 32) and out.dtype == np.uint8


def test_apply_gives_float_model_input_in_unit_range():
    img = np.full((50, 50), 255, np.uint8)
    img[0, 0] = 0
    x = Preprocess(size=50).apply(img)
    assert x.shape == (50, 50, 1) and x.dtype == np.float32
    assert x.max() == 1.0 and x.min() == 0.0


def test_apply_batch_stacks():
    batch = Preprocess(size=16).apply_batch([np.zeros((20, 20), np.uint8)] * 3)
    assert batch.shape == (3, 16, 16, 1)


def test_downscaling_averages_areas_instead_of_sampling():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = Preprocess(size=32).prepare(checker)
    assert np.abs(out.astype(int) - 128).max() <= 1


def test_crop_keeps_the_centre():
    img = np.zeros((100, 100), np.uint8)
    img[25:75, 25:75] = 255
    out = Preprocess(size=50, crop=0.5).prepare(img)
    assert out.min() == 255


def test_clahe_raises_local_contrast():
    rng = np.random.default_rng(0)
    dull = (120 + rng.integers(0, 8, (64, 64))).astype(np.uint8)
    plain = Preprocess(size=64).prepare(dull)
    equalised = Preprocess(size=64, clahe=True).prepare(dull)
    assert equalised.std() > 2 * plain.std()


def test_dict_round_trip():
    pre = Preprocess(size=128, crop=0.9, clahe=True)
    assert Preprocess.from_dict(pre.to_dict()) == pre
    assert pre.to_dict() == {"size": 128, "crop": 0.9, "clahe": True, "color": "gray"}
    assert Preprocess.from_dict({"size": 128}) == Preprocess(size=128)  # runs before colour


def test_from_dict_refuses_unknown_settings():
    with pytest.raises(PreprocessError, match="unknown preprocessing settings"):
        Preprocess.from_dict({"size": 64, "gamma": 2.2})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 0}, "size must be between"),
        ({"size": 64.5}, "size must be an integer"),
        ({"crop": 0.0}, r"crop must be in \(0, 1\]"),
        ({"crop": 1.5}, r"crop must be in \(0, 1\]"),
        ({"clahe": "yes"}, "clahe must be true or false"),
    ],
)
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(PreprocessError, match=message):
        Preprocess(**kwargs)


def test_cam_to_original_undoes_crop_and_resize():
    pre = Preprocess(size=20, crop=0.5)
    back = pre.cam_to_original(np.ones((20, 20), np.float32), (100, 120))
    assert back.shape == (100, 120)
    window = pre.crop_window((100, 120))
    assert window == (25, 75, 25, 95)
    assert (back[25:75, 25:95] == 1).all()
    back[25:75, 25:95] = 0
    assert (back == 0).all()  # outside the crop the model saw nothing


def test_cam_to_original_puts_a_hot_spot_where_it_was():
    img = np.zeros((200, 200), np.uint8)
    img[150:170, 30:50] = 255
    pre = Preprocess(size=50)
    cam = pre.prepare(img).astype(np.float32) / 255
    back = pre.cam_to_original(cam, img.shape)
    y, x = np.unravel_index(np.argmax(back), back.shape)
    assert 150 <= y < 170 and 30 <= x < 50


def test_box_to_original_maps_corners_and_keeps_extras():
    pre = Preprocess(size=20, crop=0.5)
    assert pre.box_to_original((0, 0, 20, 20, 0.7), (100, 120)) == (25, 25, 95, 75, 0.7)
    Box = namedtuple("Box", "x_min y_min x_max y_max score")
    mapped = pre.box_to_original(Box(10, 0, 20, 10, 0.5), (100, 120))
    assert mapped == Box(60, 25, 95, 50, 0.5)

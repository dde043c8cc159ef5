"""Augmentation recipes: shapes, dtypes, determinism, crop overrides, listing."""

import cv2
import numpy as np
import pytest

from classification.augment import RECIPES, describe_recipes, get_recipe, preview_grid


@pytest.fixture
def prepared():
    """A prepared (64x64 uint8) part: bright disk, dark hub, one dark pit off-centre."""
    img = np.full((64, 64), 30, np.uint8)
    cv2.circle(img, (32, 32), 26, 160, -1)
    cv2.circle(img, (32, 32), 7, 70, -1)
    cv2.circle(img, (44, 24), 3, 15, -1)
    return img


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_keeps_shape_and_dtype(name, prepared):
    out = get_recipe(name).transform(prepared, np.random.default_rng(1))
    assert out.shape == prepared.shape
    assert out.dtype == np.uint8


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items() if r.transforms()])
def test_recipe_is_deterministic_under_a_seed(name, prepared):
    first, second = get_recipe(name).augmenter(7), get_recipe(name).augmenter(7)
    draws_a = [first(prepared) for _ in range(12)]
    draws_b = [second(prepared) for _ in range(12)]
    assert all(np.array_equal(a, b) for a, b in zip(draws_a, draws_b, strict=True))


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items() if r.transforms()])
def test_recipe_draws_vary(name, prepared):
    augment = get_recipe(name).augmenter(3)
    draws = [augment(prepared) for _ in range(20)]
    assert any(not np.array_equal(d, prepared) for d in draws)


def test_per_element_generator_decides_the_draw(prepared):
    augment = get_recipe("heavy").augmenter(0)
    seeded = [augment(prepared, np.random.default_rng(s)) for s in range(10)]
    again = [augment(prepared, np.random.default_rng(s)) for s in range(10)]
    assert all(np.array_equal(a, b) for a, b in zip(seeded, again, strict=True))


def test_basic_has_no_random_transforms(prepared):
    assert get_recipe("basic").augmenter(0) is None
    assert np.array_equal(get_recipe("basic").transform(prepared, 0), prepared)


def test_crop_recipes_record_a_centre_crop():
    for name in ("crop", "noise_crop"):
        assert 0.5 < get_recipe(name).preprocess_overrides["crop"] < 1.0
    assert get_recipe("flip").preprocess_overrides == {}


def test_unknown_recipe_names_the_choices():
    with pytest.raises(ValueError, match="choose one of basic, flip"):
        get_recipe("rotate")


def test_augment_refuses_unprepared_images():
    with pytest.raises(ValueError, match="prepared uint8 image"):
        get_recipe("flip").transform(np.zeros((8, 8, 3), np.float32), 0)


@pytest.mark.parametrize("shape", [(12, 40), (12, 40, 3)])
def test_recipes_keep_non_square_and_colour_shapes(shape):
    """Quarter turns of a 12x40 strip come back as half turns; colour stays colour."""
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    image[:, :3] = 255  # a marked left edge: every draw is one of the rectangle's symmetries
    symmetries = [image, image[::-1], image[:, ::-1], image[::-1, ::-1]]
    for name in ("flip", "heavy", "noise"):
        for seed in range(6):
            out = get_recipe(name).transform(image, seed)
            assert out.shape == shape and out.dtype == np.uint8, (name, seed)
            if name == "flip":
                assert any(np.array_equal(out, s) for s in symmetries), seed


def test_listing_describes_every_recipe():
    lines = describe_recipes().splitlines()
    assert [line.split()[0] for line in lines] == list(RECIPES)


def test_preview_grid_has_a_row_per_recipe():
    raw = np.full((100, 120), 90, np.uint8)
    grid = preview_grid(raw, size=32, draws=3)
    assert grid.dtype == np.uint8
    assert grid.shape[0] == len(RECIPES) * 32 + (len(RECIPES) - 1) * 4

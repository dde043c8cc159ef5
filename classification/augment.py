"""Augmentation recipes, named after the original project's, built on albumentations.

A recipe has two parts: random training-time transforms applied to the prepared uint8 image
(after imaging.Preprocess has cropped and resized it), and preprocessing overrides (the centre
crop of `crop` / `noise_crop`) that are recorded in the run and replayed at inference.

The recipes on the command line (a list, or a preview grid): `python -m classification.preview`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import albumentations as A
import cv2
import numpy as np

Augmenter = Callable[..., np.ndarray]

# Fraction of the shorter side the crop recipes keep: trims the background corners and the
# outer rim, where the original project saw heatmap artefacts.
RIM_CROP = 0.85


def _noise() -> A.BasicTransform:
    return A.OneOf([A.Blur(blur_limit=(3, 5)), A.AdvancedBlur(), A.ISONoise()], p=0.3)


def flip_transforms() -> list[A.BasicTransform]:
    """Random flips and quarter turns: the eight symmetries of the square, equally likely."""
    # A part seen from above has no preferred orientation.
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)]


_flips = flip_transforms


@dataclass(frozen=True)
class Recipe:
    """A named augmentation recipe: random transforms plus recorded preprocessing overrides."""

    name: str
    description: str
    transforms: Callable[[], list[A.BasicTransform]] = list
    preprocess_overrides: dict[str, Any] = field(default_factory=dict)

    def augmenter(self, seed: int | None = None) -> Augmenter | None:
        """`augment(u8, rng=None) -> u8` on prepared (H, W) images; None without transforms.

        With `rng` (a numpy Generator, as imaging.make_tf_dataset passes per element) the draw
        depends only on that generator, so parallel pipelines stay reproducible. Without it the
        draws follow one stream seeded by `seed`: the same calls give the same images.
        """
        if not self.transforms():
            return None
        stream = A.Compose(self.transforms(), seed=seed)
        local = threading.local()

        def augment(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
            compose = stream if rng is None else _thread_compose(local, self.transforms, rng)
            return _apply(compose, image)[0]

        return augment

    def pair_augmenter(self) -> Augmenter:
        """`augment(u8, mask, rng) -> (u8, mask)`: one draw for an image and its defect mask.

        Geometric transforms (flips, quarter turns) move the mask with the image; the others
        (noise, blur, CLAHE) change the image only. Without transforms both come back as given.
        """
        local = threading.local()

        def augment(
            image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
        ) -> tuple[np.ndarray, np.ndarray]:
            if not self.transforms():
                return image, mask
            return _apply(_thread_compose(local, self.transforms, rng), image, mask)

        return augment

    def transform(self, image: np.ndarray, rng: int | np.random.Generator | None = None):
        """Apply one random draw to a prepared uint8 image (for previews and tests)."""
        augment = self.augmenter()
        if augment is None:
            return _as_u8(image).copy()
        return augment(
            image, rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        )


def _thread_compose(
    local: threading.local, transforms: Callable[[], list], rng: np.random.Generator
) -> A.Compose:
    """One Compose per thread, reseeded per element from `rng`: cheap and thread-safe."""
    if not hasattr(local, "compose"):
        local.compose = A.Compose(transforms())
    local.compose.set_random_seed(int(rng.integers(2**31)))
    return local.compose


def _apply(
    compose: A.Compose, image: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(image, mask) after one draw of `compose`; the mask moves only with geometric transforms."""
    # ISONoise only accepts 3 channels; the rest work the same on replicated grayscale.
    gray = _as_u8(image).ndim == 2
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if gray else image
    out = compose(image=rgb) if mask is None else compose(image=rgb, mask=mask)
    pixels = _keep_shape(out["image"], image.shape)
    pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if gray else pixels
    return pixels, None if mask is None else _keep_shape(out["mask"], mask.shape)


def _as_u8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise ValueError(
            f"augmentation expects a prepared uint8 image (H, W) or (H, W, 3), got "
            f"{image.dtype} {image.shape}; run imaging.Preprocess.prepare first"
        )
    return image


def _keep_shape(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A quarter turn of a non-square image swaps its sides: one more turn makes it a half
    turn, which (with the flips) still covers every symmetry of a rectangle."""
    if out.shape[:2] != shape[:2] and out.shape[:2] == shape[1::-1]:
        out = np.ascontiguousarray(np.rot90(out))
    return out


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("basic", "resize + normalise only, no random transforms"),
        Recipe("flip", "random flips and quarter turns (p=0.5 each)", _flips),
        Recipe("noise", "one of Blur, AdvancedBlur, ISONoise (p=0.3)", lambda: [_noise()]),
        Recipe("clahe", "CLAHE contrast equalisation (p=0.3)", lambda: [A.CLAHE(p=0.3)]),
        Recipe(
            "heavy", "noise (p=0.3) + random flips and quarter turns", lambda: [_noise(), *_flips()]
        ),
        Recipe(
            "crop",
            f"centre crop keeping {RIM_CROP:.0%} of the shorter side (cuts the rim), "
            "replayed at inference",
            list,
            {"crop": RIM_CROP},
        ),
        Recipe(
            "noise_crop",
            f"noise (p=0.3) + the {RIM_CROP:.0%} centre crop of `crop`",
            lambda: [_noise()],
            {"crop": RIM_CROP},
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    """Look a recipe up by name, with the list of choices in the error."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown augmentation {name!r}; choose one of {', '.join(RECIPES)} "
            "(or `--aug list` for descriptions)"
        ) from None


def describe_recipes() -> str:
    """One line per recipe, for `--aug list`."""
    width = max(map(len, RECIPES))
    return "\n".join(f"{r.name:<{width}}  {r.description}" for r in RECIPES.values())


def preview_grid(image: np.ndarray, size: int = 160, draws: int = 4, seed: int = 0) -> np.ndarray:
    """A uint8 grid: one row per recipe (label, then `draws` random draws) on one raw image."""
    from imaging import Preprocess

    label_w, pad = 120, 4
    rows = []
    for i, recipe in enumerate(RECIPES.values()):
        prepared = Preprocess(size=size, **recipe.preprocess_overrides).prepare(image)
        augment = recipe.augmenter(seed + i)
        tiles = [prepared if augment is None else augment(prepared) for _ in range(draws)]
        label = np.full((size, label_w), 255, np.uint8)
        cv2.putText(label, recipe.name, (6, size // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 0, 1)
        cells = [label]
        for tile in tiles:
            cells += [np.full((size, pad), 255, np.uint8), tile]
        rows += [np.hstack(cells), np.full((pad, label_w + draws * (size + pad)), 255, np.uint8)]
    return np.vstack(rows[:-1])

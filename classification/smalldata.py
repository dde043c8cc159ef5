"""Training-recipe rules for small data sets (a few hundred images or fewer).

Three things go wrong when the recipe tuned on 1,359 training images meets 160 (issue #21):
- an epoch is 5 optimizer steps, so 15 epochs are 75 updates: too few to learn anything, and
  far too few for BatchNorm's moving averages to forget their initial values. Small sets get
  at least MIN_STEPS_PER_EPOCH steps per epoch (the shuffled, augmented data repeated);
- the validation set (28 images) is too small to choose an epoch by: one image moves the
  accuracy by 4 points and its loss jumps by more than the trend. Below MIN_VAL_TO_SELECT
  images the run keeps the weights of its last epoch (the cosine schedule ends at rate 0,
  converged) instead of restoring the "best" epoch, and does not stop early;
- a 15 % split of a small class holds a handful of images: at least MIN_VAL_PER_CLASS per
  class are held out (see `val_fraction`);
- without random transforms a CNN memorises 160 images within 120 steps (training accuracy
  1.00 in inference mode, validation 0.43): below SMALL_SET images, a recipe without geometric
  transforms gets the flips and quarter turns of `flip` (the eight symmetries of the square,
  which a part seen from above does not change), recorded in run.json (`--small-data off`
  keeps the recipe as named).
BatchNorm statistics themselves are re-estimated on the training data (classification.batchnorm).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import albumentations as A

from classification.augment import Recipe, flip_transforms

log = logging.getLogger(__name__)
_GEOMETRIC = (A.HorizontalFlip, A.VerticalFlip, A.RandomRotate90, A.Transpose, A.D4)

MIN_STEPS_PER_EPOCH = 30
SMALL_SET = 500
MIN_VAL_TO_SELECT = 100
MIN_VAL_PER_CLASS = 10
MAX_VAL_FRACTION = 0.3


def steps_per_epoch(n_train: int, batch_size: int, min_steps: int = MIN_STEPS_PER_EPOCH) -> int:
    """Optimizer steps per epoch: one pass over the data, and at least `min_steps`."""
    if n_train < 1 or batch_size < 1:
        raise ValueError(f"need training images and a batch size, got {n_train}, {batch_size}")
    if min_steps < 0:
        raise ValueError(f"--min-steps {min_steps}: must be 0 or more")
    return max(math.ceil(n_train / batch_size), min_steps)


def training_data(make: Callable[[], Any], n_train: int, batch_size: int, min_steps: int):
    """(tf.data set, steps per epoch): the batched training set repeated without end.

    Fit must then be given the steps per epoch. Batches never straddle two passes, so a set
    that needs no extra steps still sees exactly one pass (one reshuffle) per epoch.
    """
    return make().repeat(), steps_per_epoch(n_train, batch_size, min_steps)


@dataclass(frozen=True)
class EpochSelection:
    """How the kept weights are chosen, recorded in run.json."""

    restore_best: bool
    reason: str

    def kept_epoch(self, val_loss: list[float], epochs_run: int) -> int | None:
        """The 1-based epoch whose weights the model holds after fit."""
        if self.restore_best and val_loss:
            return int(min(range(len(val_loss)), key=val_loss.__getitem__)) + 1
        return epochs_run or None


def epoch_selection(n_val: int) -> EpochSelection:
    """Restore the best validation epoch only when the validation set can tell epochs apart."""
    if n_val >= MIN_VAL_TO_SELECT:
        return EpochSelection(True, f"best val_loss on {n_val} validation images")
    return EpochSelection(
        False,
        f"last epoch: {n_val} validation images are too few to choose an epoch "
        f"(at least {MIN_VAL_TO_SELECT})",
    )


def val_fraction(class_counts: dict[str, int], fraction: float) -> float:
    """The validation fraction to hold out: `fraction`, raised so every class gives at least
    MIN_VAL_PER_CLASS images (never more than MAX_VAL_FRACTION)."""
    smallest = min(class_counts.values()) if class_counts else 0
    if smallest <= 0:
        return fraction
    needed = MIN_VAL_PER_CLASS / smallest
    return max(fraction, min(needed, MAX_VAL_FRACTION))


def small_set_recipe(
    recipe: Recipe, n_train: int, enabled: bool = True
) -> tuple[Recipe, str | None]:
    """(recipe to train with, note or None): `recipe` plus flips for a small training set."""
    if not enabled or n_train >= SMALL_SET:
        return recipe, None
    if any(isinstance(t, _GEOMETRIC) for t in recipe.transforms()):
        return recipe, None

    def transforms() -> list[A.BasicTransform]:
        return [*recipe.transforms(), *flip_transforms()]

    extended = Recipe(
        f"{recipe.name}+flips",
        f"{recipe.description}; plus random flips and quarter turns (small data set)",
        transforms,
        dict(recipe.preprocess_overrides),
    )
    note = (
        f"{n_train} training images (< {SMALL_SET}): recipe {recipe.name!r} trained with random "
        "flips and quarter turns added (--small-data off to keep it as named)"
    )
    log.info(note)
    return extended, note

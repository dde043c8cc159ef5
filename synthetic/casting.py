"""Cast impellers with exact defect masks: render_part and `python -m synthetic casting`.

A part and everything that is not the defect (geometry, texture, nuisances, lighting, sensor
noise) come from one random stream, the defect from another. Rendering the same seed with and
without a defect therefore gives the same picture everywhere except where the defect changed
it, and that difference is the mask.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from synthetic.defects import PAINTERS
from synthetic.impeller import build_scene, develop, expose

log = logging.getLogger(__name__)

DEFECT_TYPES: tuple[str, ...] = ("blowhole", "pinhole", "burr", "shrinkage", "scratch", "edge_chip")
# Tuned with the sizes in synthetic.defects: the demo classifier (simple_cnn, flip recipe, 20
# epochs, cosine schedule) reached 98.75 % test accuracy in one measurement, 97.3 % at 1.5.
DEFAULT_CONTRAST = 2.0
# A pixel belongs to the mask when the defect moved it by at least this many grey levels.
MASK_THRESHOLD = 3.0
MIN_COMPONENT_PIXELS = 3
AREA_RANGE = (0.001, 0.03)
MAX_ATTEMPTS = 12
MIN_SIZE = 64

SeedLike = int | np.random.SeedSequence | np.random.Generator


class CastingOptionError(ValueError):
    """An option of the casting generator is out of range; the message names it and the fix."""


class UnknownDefectError(CastingOptionError):
    """Raised for a defect name that is not one of DEFECT_TYPES."""


def _streams(rng_or_seed: SeedLike) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent part and defect generators derived from one seed, without mutating it."""
    if isinstance(rng_or_seed, np.random.Generator):
        root = np.random.SeedSequence(rng_or_seed.integers(0, 2**63, size=4).tolist())
    elif isinstance(rng_or_seed, np.random.SeedSequence):
        root = rng_or_seed
    else:
        root = np.random.SeedSequence(int(rng_or_seed))
    part, defect = (
        np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, k)) for k in (0, 1)
    )
    return np.random.default_rng(part), np.random.default_rng(defect)


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Remove isolated blur-tail pixels so every mask component is a visible mark."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= MIN_COMPONENT_PIXELS
    return keep[labels]


def _area_miss(fraction: float) -> float:
    low, high = AREA_RANGE
    return max(low - fraction, fraction - high, 0.0)


def render_part(
    rng_or_seed: SeedLike,
    size: int = 300,
    defect: str | None = None,
    contrast: float = DEFAULT_CONTRAST,
) -> tuple[np.ndarray, np.ndarray]:
    """One grayscale impeller (uint8 HxW) and its defect mask (uint8 0/255, all 0 when good).

    ``rng_or_seed`` may be an int, a SeedSequence or a Generator (which is advanced once).
    The mask holds exactly the pixels where the image differs from ``render_part(same seed)``.
    """
    if defect is not None and defect not in PAINTERS:
        raise UnknownDefectError(
            f"defect {defect!r} is unknown; choose one of {', '.join(DEFECT_TYPES)} or None"
        )
    if size < MIN_SIZE:
        raise CastingOptionError(f"size {size} is too small; use at least {MIN_SIZE} pixels")
    part_rng, defect_rng = _streams(rng_or_seed)
    scene = build_scene(part_rng, size)
    geo, camera = scene.geometry, scene.camera
    grey = expose(scene.surface, geo, camera)
    clean = develop(grey, camera)
    if defect is None:
        return clean, np.zeros_like(clean)

    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(MAX_ATTEMPTS):
        surface = scene.surface.copy()
        PAINTERS[defect](surface, geo, defect_rng, contrast)
        damaged_grey = expose(surface, geo, camera)
        damaged = develop(damaged_grey, camera)
        changed = (np.abs(damaged_grey - grey) >= MASK_THRESHOLD) & (damaged != clean)
        mask = _drop_specks(changed)
        miss = _area_miss(float(mask.mean()))
        if best is None or miss < best[0]:
            best = (miss, mask, damaged)
        if miss == 0.0:
            break
    _, mask, damaged = best
    if best[0] > 0:
        log.debug("%s covers %.4f of the image after %d tries", defect, mask.mean(), MAX_ATTEMPTS)
    image = np.where(mask, damaged, clean)
    return image, mask.astype(np.uint8) * 255

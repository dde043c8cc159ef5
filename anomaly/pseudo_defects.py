"""Simulated anomalies on good images (DRAEM-style), pure numpy/OpenCV and seeded.

A discriminative network never sees a real defect: it learns to segment these instead. Each
pseudo-defect is a shape (an irregular Perlin-like blob, a small ellipse cluster, or a thin
stroke) placed on the part, filled with something that does not belong there (darkened or
brightened material, texture from another good image, smoothed-over texture, a foreign noise
texture) and blended in with a random opacity. The returned mask is exactly the set of pixels
that changed by more than `min_change`, so the target never marks invisible edits.

Images are float32 (S, S) or (S, S, 1) in [0, 1]; masks are float32 (S, S) in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("blob", "ellipses", "stroke")
FILLS = ("shift", "scale", "texture", "smooth", "noise")


class PseudoDefectError(ValueError):
    """Pseudo-defect settings or inputs are unusable."""


@dataclass(frozen=True)
class PseudoDefectConfig:
    """Areas are fractions of the image; `probability` is the chance a sample gets a defect."""

    probability: float = 0.5
    min_area: float = 0.0004
    max_area: float = 0.02
    min_change: float = 0.03
    max_defects: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise PseudoDefectError(f"probability must be in [0, 1], got {self.probability}")
        if self.max_defects < 1:
            raise PseudoDefectError(f"max_defects must be at least 1, got {self.max_defects}")
        if not 0 < self.min_area < self.max_area < 1:
            raise PseudoDefectError(
                f"need 0 < min_area < max_area < 1, got {self.min_area}, {self.max_area}"
            )


def _gray(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise PseudoDefectError(f"expected an (S, S) or (S, S, 1) image, got {img.shape}")
    return img


def _blob(rng: np.random.Generator, side: int, area: float) -> np.ndarray:
    """An irregular blob of about `area` pixels in a (side, side) window (value noise)."""
    grid = int(rng.integers(2, 6))
    noise = cv2.resize(rng.random((grid, grid)).astype(np.float32), (side, side), cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    c = (side - 1) / 2
    falloff = 1.0 - ((yy - c) ** 2 + (xx - c) ** 2) / (c**2 + 1e-6)
    field = noise + 1.5 * falloff
    k = int(np.clip(round(area), 1, field.size))
    cut = np.partition(field.ravel(), field.size - k)[field.size - k]
    return field >= cut


def _ellipses(rng: np.random.Generator, side: int, area: float) -> np.ndarray:
    out = np.zeros((side, side), np.uint8)
    n = int(rng.integers(1, 4))
    for _ in range(n):
        aspect = rng.uniform(1.0, 2.5)
        b = max(1.0, np.sqrt(area / n / np.pi / aspect))
        a = b * aspect
        spread = side / 4 if n > 1 else 0
        cx = int(side / 2 + rng.uniform(-spread, spread))
        cy = int(side / 2 + rng.uniform(-spread, spread))
        axes = (max(1, int(round(a))), max(1, int(round(b))))
        cv2.ellipse(out, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return out > 0


def _stroke(rng: np.random.Generator, side: int, area: float) -> np.ndarray:
    out = np.zeros((side, side), np.uint8)
    thickness = int(rng.integers(1, 4))
    length = max(4.0, area / thickness)
    n_seg = int(rng.integers(1, 4))
    angle = rng.uniform(0, 2 * np.pi)
    pts = [np.array([side / 2, side / 2])]
    for _ in range(n_seg):
        angle += rng.uniform(-0.6, 0.6)
        step = length / n_seg
        pts.append(pts[-1] + step * np.array([np.cos(angle), np.sin(angle)]))
    pts_arr = np.array(pts)
    pts_arr -= pts_arr.mean(axis=0) - side / 2
    cv2.polylines(out, [pts_arr.round().astype(np.int32)], False, 1, thickness)
    return out > 0


def random_shape(
    rng: np.random.Generator, shape: tuple[int, int], center: tuple[int, int], area: float
) -> np.ndarray:
    """Bool mask of one random shape of about `area` pixels centred at (row, col)."""
    h, w = shape
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    if kind == "stroke":
        side = int(min(max(h, w), max(8, area / 1.5 + 4)))
        local = _stroke(rng, side, area)
    else:
        side = int(min(max(h, w), max(6, 2.2 * np.sqrt(area) + 4)))
        local = _blob(rng, side, area) if kind == "blob" else _ellipses(rng, side, area)
    out = np.zeros(shape, bool)
    r0, c0 = center[0] - side // 2, center[1] - side // 2
    rs, cs = max(0, r0), max(0, c0)
    re, ce = min(h, r0 + side), min(w, c0 + side)
    out[rs:re, cs:ce] = local[rs - r0 : re - r0, cs - c0 : ce - c0]
    return out


def _fill(
    rng: np.random.Generator, img: np.ndarray, donors: Sequence[np.ndarray] | None
) -> np.ndarray:
    """A full-size image of what goes into the defect region."""
    kind = FILLS[int(rng.integers(len(FILLS)))]
    if kind == "texture" and donors is not None and len(donors) > 0:
        donor = _gray(donors[int(rng.integers(len(donors)))])
        h, w = img.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(0, 360)), 1.0)
        m[:, 2] += rng.uniform(-w / 4, w / 4, size=2)
        return cv2.warpAffine(donor, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if kind == "shift" or kind == "texture":
        sign = 1.0 if rng.random() < 0.4 else -1.0
        return img + sign * rng.uniform(0.12, 0.5)
    if kind == "scale":
        return img * rng.uniform(0.05, 0.6)
    if kind == "smooth":
        blurred = cv2.GaussianBlur(img, (0, 0), rng.uniform(2.0, 5.0))
        return blurred + rng.uniform(-0.25, 0.1)
    grid = int(rng.integers(8, 64))
    noise = cv2.resize(rng.random((grid, grid)).astype(np.float32), img.shape[::-1])
    return rng.uniform(0.05, 0.8) + rng.uniform(0.1, 0.4) * (noise - 0.5)


def add_pseudo_defect(
    image: np.ndarray,
    rng: np.random.Generator,
    config: PseudoDefectConfig | None = None,
    donors: Sequence[np.ndarray] | None = None,
    region: np.ndarray | None = None,
    max_tries: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """(defective image (S, S) float32 in [0, 1], mask (S, S) float32) for one good image.

    Always adds a defect (use `corrupt_batch` for the probability); the mask's area lies in
    [min_area, max_area] of the image, or the mask is empty if no try reached the minimum
    (e.g. a region of a few pixels). `region` (bool) restricts defects, e.g. to the part.
    """
    config = config or PseudoDefectConfig()
    img = _gray(image)
    h, w = img.shape
    if region is None:
        region = np.ones((h, w), bool)
    candidates = np.argwhere(region)
    if len(candidates) == 0:
        return img.copy(), np.zeros((h, w), np.float32)
    lo, hi = config.min_area * h * w, config.max_area * h * w
    for _ in range(max_tries):
        area = float(np.exp(rng.uniform(np.log(max(lo, 1.0)), np.log(hi))))
        center = tuple(int(v) for v in candidates[int(rng.integers(len(candidates)))])
        shape = random_shape(rng, (h, w), center, area) & region
        fill = _fill(rng, img, donors)
        beta = rng.uniform(0.6, 1.0)
        out = np.clip(np.where(shape, (1 - beta) * img + beta * fill, img), 0.0, 1.0)
        changed = np.abs(out - img) > config.min_change
        n = int(changed.sum())
        if lo <= n <= hi:
            out = np.where(changed, out, img).astype(np.float32)
            return out, changed.astype(np.float32)
    return img.copy(), np.zeros((h, w), np.float32)


def corrupt_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    config: PseudoDefectConfig | None = None,
    regions: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(corrupted (N, S, S, 1), masks (N, S, S, 1)): each image gets defects with
    `config.probability` (1 to `config.max_defects` of them); donors for foreign texture are the
    other images of the batch. Masks are again exactly the visibly changed pixels."""
    config = config or PseudoDefectConfig()
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    out = x.copy()
    masks = np.zeros(x.shape, np.float32)
    for i in range(len(x)):
        if rng.random() >= config.probability:
            continue
        donors = [x[j] for j in range(len(x)) if j != i] or None
        region = None if regions is None else regions[i]
        img = x[i, ..., 0]
        for _ in range(int(rng.integers(1, config.max_defects + 1))):
            img, _ = add_pseudo_defect(img, rng, config, donors, region)
        changed = np.abs(img - x[i, ..., 0]) > config.min_change
        out[i, ..., 0] = np.where(changed, img, x[i, ..., 0])
        masks[i, ..., 0] = changed
    return out, masks

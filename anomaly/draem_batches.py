"""DRAEM's training data: endless batches of good images carrying simulated defects (seeded per
batch, so runs repeat), as a tf.data pipeline, and the part regions the defects are drawn in."""

from __future__ import annotations

import itertools

import numpy as np

from anomaly.postprocess import part_region
from anomaly.pseudo_defects import PseudoDefectConfig, corrupt_batch


def pseudo_defect_batches(
    x: np.ndarray,
    regions: np.ndarray,
    batch_size: int,
    defects: PseudoDefectConfig,
    seed: int,
):
    """Endless batches of good images (random 90-degree turns and flips) carrying simulated
    defects, as (corrupted, (clean, mask)); batch b is seeded by (seed, b), so runs repeat."""
    for b in itertools.count():
        rng = np.random.default_rng([seed, b])
        pick = rng.integers(0, len(x), batch_size)
        clean, reg = x[pick].copy(), regions[pick].copy()
        for i in range(len(pick)):
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            clean[i], reg[i] = np.rot90(clean[i], k), np.rot90(reg[i], k)
            if flip:
                clean[i], reg[i] = clean[i][:, ::-1], reg[i][:, ::-1]
        corrupted, masks = corrupt_batch(clean, rng, defects, reg)
        yield corrupted, (clean, masks)


def as_dataset(batches, img_size: int):
    import tensorflow as tf

    spec = tf.TensorSpec((None, img_size, img_size, 1), tf.float32)
    return tf.data.Dataset.from_generator(
        lambda: batches, output_signature=(spec, (spec, spec))
    ).prefetch(2)


def part_regions(x: np.ndarray) -> np.ndarray:
    return np.stack([part_region(img) for img in x])

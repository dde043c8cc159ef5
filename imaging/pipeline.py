"""Input pipelines: the tf.data builder every trainer uses, and batch loading for inference.

Images are decoded with `read_image` and prepared with the run's `Preprocess` exactly once, kept
in memory as uint8 at the model's size, then augmented per epoch, normalised, batched and
prefetched. A few thousand 224 px images take a few hundred MB.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imaging.decode import ImageError, read_image, to_gray
from imaging.layouts import DatasetError
from imaging.preprocess import Preprocess

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

Augment = Callable[..., np.ndarray]
_SHOWN = 5


def _workers(workers: int | None) -> int:
    return workers or max(1, min(4, os.cpu_count() or 1))


def _prepare_one(item: Any, preprocess: Preprocess) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return preprocess.prepare(item)
    return preprocess.prepare(read_image(item))


def _prepare_all(
    items: Sequence[Any], preprocess: Preprocess, workers: int | None
) -> tuple[list[np.ndarray | None], list[ImageError]]:
    """Decode + prepare in a thread pool (OpenCV and Pillow release the GIL)."""

    def one(index_item: tuple[int, Any]) -> np.ndarray | ImageError:
        index, item = index_item
        try:
            return _prepare_one(item, preprocess)
        except ImageError as exc:
            exc.index = index
            return exc

    with ThreadPoolExecutor(max_workers=_workers(workers)) as pool:
        results = list(pool.map(one, enumerate(items)))
    errors = [r for r in results if isinstance(r, ImageError)]
    prepared = [None if isinstance(r, ImageError) else r for r in results]
    return prepared, errors


def load_images(
    paths: Sequence[Any], preprocess: Preprocess, workers: int | None = None
) -> tuple[np.ndarray, list[ImageError]]:
    """Model input for inference: float32 (N_ok, H, W, C) and one ImageError per bad input.

    Items may be paths, bytes, file objects or decoded arrays. Rows keep the input order with
    the failed items left out; each error has `.source`, `.reason` and `.index` (its position in
    `paths`), so one corrupt upload is reported while the others proceed.
    """
    prepared, errors = _prepare_all(list(paths), preprocess, workers)
    good = [preprocess.normalize(u8) for u8 in prepared if u8 is not None]
    for error in errors:
        log.warning("skipping %s", error)
    if not good:
        return np.zeros((0, *preprocess.input_shape), np.float32), errors
    return np.stack(good), errors


def _wants_rng(augment: Augment) -> bool:
    """True for augment(u8, rng): such callables get a per-element seeded Generator."""
    try:
        params = inspect.signature(augment).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    return len(positional) >= 2 or any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)


def _checked_augment(augment: Augment, shape: tuple[int, ...]) -> Callable[..., np.ndarray]:
    with_rng = _wants_rng(augment)

    def run(u8: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
        out = augment(u8, np.random.default_rng(int(seed))) if with_rng else augment(u8)
        out = np.asarray(out)
        if len(shape) == 2 and out.ndim == 3 and out.shape[2] in (1, 3):
            out = to_gray(out.astype(np.uint8)) if out.dtype == np.uint8 else out[:, :, 0]
        if out.dtype != np.uint8 or out.shape != shape:
            raise ValueError(f"augment must return uint8 {shape}, got {out.dtype} {out.shape}")
        return out

    return run


def _check_labels(labels: Any, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise DatasetError(f"expected {n} labels (one per path), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"labels must be class indices (integers), got {labels.dtype}: "
            "use spec.labels_to_index(labels)"
        )
    return labels.astype(np.int32)


def prepare_cache(
    paths: Sequence[str | Path], preprocess: Preprocess, workers: int | None = None
) -> np.ndarray:
    """Decode + prepare every image once: uint8 (N, H, W[, 3]); any bad file stops it, named."""
    start = time.perf_counter()
    prepared, errors = _prepare_all(list(paths), preprocess, workers)
    if errors:
        details = "; ".join(str(e) for e in errors[:_SHOWN])
        more = f" ... and {len(errors) - _SHOWN} more" if len(errors) > _SHOWN else ""
        raise DatasetError(
            f"{len(errors)} of {len(prepared)} images cannot be read: {details}{more}; "
            "fix or remove them"
        )
    log.info(
        "decoded and prepared %d images at %s px (%s) in %.1fs",
        len(prepared),
        "x".join(map(str, preprocess.shape)),
        preprocess.color,
        time.perf_counter() - start,
    )
    if not prepared:
        return np.zeros((0, *preprocess.prepared_shape), np.uint8)
    return np.stack(prepared)


def make_tf_dataset(
    paths: Sequence[str | Path],
    labels: Sequence[int] | np.ndarray | None,
    preprocess: Preprocess,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    augment: Augment | None = None,
    cache: bool = True,
    workers: int | None = None,
    masks: np.ndarray | None = None,
) -> tf.data.Dataset:
    """The one tf.data input pipeline for training and evaluation.

    Yields (float32 (B, H, W, C), int32 (B,)) or images only when labels is None.
    `augment` is `augment(u8) -> u8` or `augment(u8, rng) -> u8` on uint8 (H, W[, 3]); the
    second form gets a numpy Generator seeded per element from `seed`, so augmentation is
    reproducible run to run while differing from epoch to epoch.

    masks: uint8 (N, H, W) at the prepared size, one per path (defect masks for mask
    supervision, classification.masksup). Elements are then (image, (label, mask)), and
    `augment` must be `augment(u8, mask, rng) -> (u8, mask)` so both get the same draw.
    """
    import tensorflow as tf

    paths = [str(p) for p in paths]
    if not paths:
        raise DatasetError("no images to build a data set from")
    if batch_size < 1:
        raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
    label_array = None if labels is None else _check_labels(labels, len(paths))
    size = preprocess.prepared_shape
    if masks is not None:
        masks = _check_masks(masks, label_array, size)

    if cache:
        images = tf.data.Dataset.from_tensor_slices(prepare_cache(paths, preprocess, workers))
    else:
        images = tf.data.Dataset.from_tensor_slices(paths)
    targets = None if label_array is None else tf.data.Dataset.from_tensor_slices(label_array)
    if masks is not None:
        targets = tf.data.Dataset.zip((targets, tf.data.Dataset.from_tensor_slices(masks)))
    ds = images if targets is None else tf.data.Dataset.zip((images, targets))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    labelled = label_array is not None
    if not cache:
        ds = _decoded(ds, preprocess, labelled)
    if augment is not None and masks is not None:
        ds = _augmented_pairs(ds, augment, size, seed)
    elif augment is not None:
        ds = _augmented(ds, _checked_augment(augment, size), size, seed, labelled)
    ds = _normalized_batches(ds, batch_size, size, labelled)
    return ds.prefetch(tf.data.AUTOTUNE)


def _on_images(ds: tf.data.Dataset, fn: Callable, labelled: bool) -> tf.data.Dataset:
    """Map `fn` over the images of (image, label) or image-only elements, order kept."""
    import tensorflow as tf

    mapped = (lambda x, y: (fn(x), y)) if labelled else fn
    return ds.map(mapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _decoded(ds: tf.data.Dataset, preprocess: Preprocess, labelled: bool) -> tf.data.Dataset:
    """Paths to prepared uint8 images (decode, crop, resize) when nothing was cached."""
    import tensorflow as tf

    size = preprocess.prepared_shape

    def decode(path: tf.Tensor) -> tf.Tensor:
        u8 = tf.numpy_function(
            lambda p: _prepare_one(p.decode("utf-8"), preprocess), [path], tf.uint8
        )
        return tf.ensure_shape(u8, size)

    return _on_images(ds, decode, labelled)


def _augmented(
    ds: tf.data.Dataset, run: Callable, size: tuple[int, ...], seed: int, labelled: bool
) -> tf.data.Dataset:
    """Each element augmented by `run(u8, element_seed)`, seeds drawn afresh every epoch."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, seeds))

    def augmented(u8: tf.Tensor, element_seed: tf.Tensor) -> tf.Tensor:
        out = tf.numpy_function(run, [u8, element_seed], tf.uint8)
        return tf.ensure_shape(out, size)

    if not labelled:
        return ds.map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.map(
        lambda xy, s: (augmented(xy[0], s), xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _check_masks(masks: Any, labels: np.ndarray | None, size: tuple[int, ...]) -> np.ndarray:
    masks = np.asarray(masks)
    if labels is None:
        raise DatasetError("masks need labels: pass the class index of every image")
    if masks.dtype != np.uint8 or masks.shape != (len(labels), *size[:2]):
        raise DatasetError(
            f"masks must be uint8 {(len(labels), *size[:2])} (one per image, prepared size), "
            f"got {masks.dtype} {masks.shape}"
        )
    return masks


def _augmented_pairs(
    ds: tf.data.Dataset, augment: Augment, size: tuple[int, ...], seed: int
) -> tf.data.Dataset:
    """(image, (label, mask)) elements with image and mask augmented by one draw."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    mask_shape = size[:2]

    def run(u8: np.ndarray, mask: np.ndarray, element_seed: np.ndarray):
        image, out_mask = augment(u8, mask, np.random.default_rng(int(element_seed)))
        image, out_mask = np.asarray(image), np.asarray(out_mask)
        if image.dtype != np.uint8 or image.shape != size or out_mask.shape != mask_shape:
            raise ValueError(
                f"augment must return uint8 {size} and a {mask_shape} mask, "
                f"got {image.dtype} {image.shape} and {out_mask.shape}"
            )
        return image, out_mask.astype(np.uint8)

    def augmented(element, element_seed):
        u8, (label, mask) = element
        image, out_mask = tf.numpy_function(run, [u8, mask, element_seed], [tf.uint8, tf.uint8])
        return tf.ensure_shape(image, size), (label, tf.ensure_shape(out_mask, mask_shape))

    return tf.data.Dataset.zip((ds, seeds)).map(
        augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def _normalized_batches(
    ds: tf.data.Dataset, batch_size: int, size: tuple[int, ...], labelled: bool
) -> tf.data.Dataset:
    """Batches of float32 in [0, 1], a channel axis added to gray images."""
    import tensorflow as tf

    def normalize(u8: tf.Tensor) -> tf.Tensor:
        # Same arithmetic as Preprocess.normalize, on the whole batch.
        scaled = tf.cast(u8, tf.float32) / 255.0
        return tf.expand_dims(scaled, -1) if len(size) == 2 else scaled

    ds = ds.batch(batch_size)
    if not labelled:
        return ds.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)

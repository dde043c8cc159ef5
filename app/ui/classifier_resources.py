"""The classifier's outputs on decoded images, cached: class probabilities, CAM heatmaps on the
original image (per-image or run-wide absolute scale, calibrated on validation images) and the
layers a CAM can use; explain's refusals are shown in the page."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ui.dataset_resources import datasets, read_path
from ui.resources import RunRef, image_key, model, preprocess


@st.cache_data(max_entries=1024, show_spinner=False)
def _probabilities(run_key: str, image_keys: tuple[str, ...], _ref: RunRef, _images: list) -> Any:
    batch = preprocess(_ref).apply_batch(_images)
    net = model(_ref)
    if len(batch) <= 32:  # a direct call skips predict()'s per-call setup (tens of ms)
        return np.asarray(net(batch, training=False), dtype=np.float32)
    return np.asarray(net.predict(batch, verbose=0, batch_size=32), dtype=np.float32)


def probabilities(ref: RunRef, images: list[np.ndarray]) -> np.ndarray:
    """Class probabilities (N, classes) for decoded images."""
    keys = tuple(image_key(im) for im in images)
    return _probabilities(ref.key, keys, ref, images)


# SmoothGrad's noise on the dashboard: 2 % of the image's value range. tf-keras-vis' default
# (20 %) makes the noisy copies so unlike the training images that the demo models answer
# with the image corners (next to the zero padding) instead of the defect. Measured on 16
# defective sample images with demo_flip (pointing game / energy inside the dilated mask):
# noise 0: 1.00 / 0.35, 1 %: 1.00 / 0.38, 2 %: 0.94 / 0.39, 5 %: 0.69 / 0.24, 10 %: 0.06 /
# 0.03, 20 %: 0.00 / 0.01 with corner heat 9x the inner heat (docs/metrics.md).
SMOOTH_NOISE = 0.02


# each entry holds original-size float maps (~0.4 MB per 300 px image): keep the cache bounded
@st.cache_data(max_entries=256, show_spinner=False)
def _raw_cams(
    run_key: str,
    image_keys: tuple[str, ...],
    method: str,
    layer: str | None,
    class_index: int | None,
    _ref: RunRef,
    _images: list,
) -> list[np.ndarray]:
    from explain import compute_cams

    prep = preprocess(_ref)
    batch = prep.apply_batch(_images)
    options = {"smooth_noise": SMOOTH_NOISE} if method == "smoothgrad" else {}
    cams = compute_cams(
        model(_ref), batch, method=method, layer=layer, class_index=class_index,
        normalize=False, **options,
    )  # fmt: skip
    return [
        np.asarray(prep.cam_to_original(c, im.shape[:2]), dtype=np.float32)
        for c, im in zip(cams, _images, strict=True)
    ]


def raw_cams(
    ref: RunRef,
    images: list[np.ndarray],
    method: str,
    layer: str | None = None,
    class_index: int | None = None,
) -> list[np.ndarray]:
    """Unscaled heatmaps (model units, >= 0) mapped back onto each original image (H, W)."""
    keys = tuple(image_key(im) for im in images)
    with explain_errors_in_page(ref):
        return _raw_cams(ref.key, keys, method, layer, class_index, ref, images)


def cams(
    ref: RunRef,
    images: list[np.ndarray],
    method: str,
    layer: str | None = None,
    class_index: int | None = None,
    scale: str = "image",
) -> list[np.ndarray]:
    """Heatmaps in [0, 1] on each original image: per-image min-max ("image") or divided by
    the run-wide reference calibrated on validation images ("absolute")."""
    from explain.heatscale import scale_map

    reference = reference_scale(ref, method, layer, class_index)[0] if scale == "absolute" else None
    return [
        scale_map(r, scale, reference) for r in raw_cams(ref, images, method, layer, class_index)
    ]


def box_head_stamp(ref: RunRef) -> float | None:
    """Modification time of the run's box head (explain.boxhead), None when it has none."""
    from explain.boxhead import HEAD_FILE, INFO_KEY

    path = Path(ref.path) / HEAD_FILE
    return path.stat().st_mtime if ref.info.get(INFO_KEY) and path.exists() else None


@st.cache_resource(show_spinner="Loading the box head…", max_entries=8)
def _box_head(run_path: str, model_stamp: float, head_stamp: float, _ref: RunRef) -> Any:
    from explain.boxhead import load_box_head

    del model_stamp, head_stamp  # cache keys: a retrained model or head is loaded again
    return load_box_head(_ref.run(), model(_ref))


@st.cache_data(max_entries=256, show_spinner=False)
def _box_head_maps(
    run_key: str, head_stamp: float, image_keys: tuple[str, ...], _ref: RunRef, _images: list
) -> list[np.ndarray]:
    head = _box_head(_ref.path, _ref.stamp, head_stamp, _ref)
    prep = preprocess(_ref)
    maps = head.maps(prep.apply_batch(_images))
    return [
        np.asarray(prep.cam_to_original(m, im.shape[:2]), dtype=np.float32)
        for m, im in zip(maps, _images, strict=True)
    ]


def box_head_maps(ref: RunRef, images: list[np.ndarray]) -> list[np.ndarray] | None:
    """The box head's defect probability on each original image (H, W), None without a head."""
    stamp = box_head_stamp(ref)
    if stamp is None:
        return None
    keys = tuple(image_key(im) for im in images)
    with explain_errors_in_page(ref):
        return _box_head_maps(ref.key, stamp, keys, ref, images)


CALIBRATION_IMAGES = 48


def calibration_images(ref: RunRef) -> tuple[list[str], str]:
    """Up to 48 validation images of the run's own data (both classes alternating), else the
    first readable gallery data set's images; with a sentence naming the source."""
    from imaging import DatasetError, discover

    root = (
        (ref.info.get("data") or {}).get("root") if isinstance(ref.info.get("data"), dict) else None
    )
    if root and Path(root).is_dir():
        try:
            from classification.splits import classifier_splits

            spec, _ = classifier_splits(
                discover(root),
                val_fraction=float(ref.info.get("val_split", 0.15)),
                seed=int(ref.info.get("seed", 0)),
            )
            val = spec.items[spec.items["split"] == "val"]
            if not val.empty:
                picked = _alternate(val, CALIBRATION_IMAGES)
                return picked, f"{len(picked)} validation images of {Path(root).name}"
        except (DatasetError, ValueError, OSError):
            pass
    found, _ = datasets()
    if not found:
        return [], "no reference images"
    items = found[0].items
    picked = _alternate(items, CALIBRATION_IMAGES)
    return (
        picked,
        f"{len(picked)} images of {found[0].name} (the run's data is not on this machine)",
    )


def _alternate(items: pd.DataFrame, n: int) -> list[str]:
    groups = [g["path"].tolist() for _, g in items.sort_values("path").groupby("label")]
    out: list[str] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out += [g[i] for g in groups if i < len(g)]
    return out[:n]


@st.cache_data(max_entries=64, show_spinner="Calibrating the run-wide heat scale…")
def _reference_scale(
    run_key: str, method: str, layer: str | None, class_index: int | None, _ref: RunRef
) -> tuple[float | None, str]:
    from explain import ExplainError
    from explain.heatscale import DEFAULT_QUANTILE, calibrate_reference

    paths, source = calibration_images(_ref)
    if not paths:
        return None, source
    maps: list[np.ndarray] = []
    for start in range(0, len(paths), 16):
        images = [read_path(p) for p in paths[start : start + 16]]
        maps += raw_cams(_ref, images, method, layer, class_index)
    try:
        reference = calibrate_reference(maps, DEFAULT_QUANTILE)
    except ExplainError as exc:
        return None, str(exc)
    return reference, f"1.0 = the {DEFAULT_QUANTILE:.0%} quantile of peak heat over {source}"


def reference_scale(
    ref: RunRef, method: str, layer: str | None, class_index: int | None
) -> tuple[float | None, str]:
    """(reference, how it was calibrated) for absolute heat; reference None when impossible."""
    return _reference_scale(ref.key, method, layer, class_index, ref)


@st.cache_data(max_entries=64, show_spinner=False)
def _candidate_layers(run_key: str, _ref: RunRef) -> list[str]:
    from explain import candidate_layers

    return list(candidate_layers(model(_ref)))


def candidate_layers(ref: RunRef) -> list[str]:
    with explain_errors_in_page(ref):
        return _candidate_layers(ref.key, ref)


@contextlib.contextmanager
def explain_errors_in_page(ref: RunRef):
    """A model, layer or method explain refuses: its message in the page, then stop the page."""
    from explain import ExplainError

    try:
        yield
    except ExplainError as exc:
        st.error(f"Cannot explain run **{ref.name}**: {exc}", icon=":material/error:")
        st.stop()

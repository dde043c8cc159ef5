"""Cached access to runs, models, data sets and images.

Models live behind st.cache_resource (one instance per process, keyed by run folder and the
model file's modification time, so a retrained run is picked up). Everything derived from
an image (predictions, heatmaps) is st.cache_data keyed by run, image hash, method and layer;
the arrays themselves are passed as underscore arguments so Streamlit does not hash them.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import store


@dataclass(frozen=True)
class RunRef:
    """A run as the UI sees it: name, folder, run.json, and a key that changes on retrain."""

    name: str
    path: str
    info: dict[str, Any]
    stamp: float

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def key(self) -> str:
        return f"{self.path}@{self.stamp}"

    @property
    def class_names(self) -> list[str]:
        return list(self.info.get("class_names") or [])

    @property
    def normal_class(self) -> str | None:
        return self.info.get("normal_class")

    @property
    def warnings(self) -> list[str]:
        """Guard-rail warnings recorded at training time (e.g. predictions collapsed)."""
        return store.run_warnings(self.info)

    def run(self) -> store.Run:
        return store.Run(path=Path(self.path), info=self.info)


def _stamp(path: Path) -> float:
    model = path / store.runs.MODEL_FILE
    return model.stat().st_mtime if model.exists() else 0.0


@st.cache_data(ttl=10, show_spinner=False)
def list_runs(kind: str | None = None, root: str | None = None) -> list[RunRef]:
    """Runs under the weights folder (re-read every few seconds, so new runs appear)."""
    del root  # part of the cache key only: DEFECTLENS_WEIGHTS may change between sessions
    return [
        RunRef(name=r.name, path=str(r.path), info=r.info, stamp=_stamp(r.path))
        for r in store.list_runs(kind=kind)
    ]


def runs(kind: str | None = None) -> list[RunRef]:
    return list_runs(kind, str(store.weights_dir()))


@st.cache_resource(show_spinner="Loading model…", max_entries=24)
def _load_model(run_path: str, stamp: float) -> Any:
    del stamp
    return store.load_run(run_path).load_model()


def model(ref: RunRef) -> Any:
    """The run's Keras model, loaded once per process (safe mode)."""
    return _load_model(ref.path, ref.stamp)


def preprocess(ref: RunRef) -> Any:
    from imaging import Preprocess

    return Preprocess.from_dict(ref.info.get("preprocess") or {"size": ref.info["img_size"]})


def image_key(image: np.ndarray) -> str:
    """Content hash of a decoded image: the cache key for everything computed from it."""
    digest = hashlib.blake2b(image.tobytes(), digest_size=16)
    digest.update(str(image.shape).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- data sets and images


@dataclass(frozen=True)
class Dataset:
    """A data set folder found on disk, as imaging.discover read it."""

    name: str
    root: str
    layout: str
    items: pd.DataFrame
    boxes: pd.DataFrame
    class_names: list[str]
    normal_class: str


# Folders the app itself keeps in the data folder: the review log's stored image copies.
NOT_DATASETS = {"review_images"}


def dataset_roots() -> list[Path]:
    """Candidate data sets: the committed samples/ and whatever lives in the data folder."""
    roots = []
    for parent in (store.repo_root() / "samples", store.data_dir()):
        if parent.is_dir():
            roots += sorted(
                p
                for p in parent.iterdir()
                if p.is_dir() and p.name[0] not in "._" and p.name not in NOT_DATASETS
            )
    return roots


@st.cache_data(show_spinner="Reading data set…", max_entries=16)
def _discover(root: str, stamp: float) -> Dataset | str:
    del stamp
    from imaging import DatasetError, discover

    try:
        spec = discover(root)
    except (DatasetError, ValueError, OSError) as exc:
        return str(exc)
    return Dataset(
        name=Path(root).name,
        root=str(spec.root),
        layout=spec.layout,
        items=spec.items.reset_index(drop=True),
        boxes=spec.boxes.reset_index(drop=True),
        class_names=list(spec.class_names),
        normal_class=spec.normal_class,
    )


def datasets() -> tuple[list[Dataset], dict[str, str]]:
    """Readable data sets and, for the others, why they could not be read."""
    found, problems = [], {}
    for root in dataset_roots():
        result = _discover(str(root), root.stat().st_mtime)
        if isinstance(result, Dataset):
            found.append(result)
        else:
            problems[str(root)] = result
    return found, problems


@st.cache_data(max_entries=1024, show_spinner=False)
def read_path(path: str) -> np.ndarray:
    """Decode an image file through imaging (the one place that decodes images)."""
    from imaging import read_image

    return read_image(path)


@st.cache_data(max_entries=256, show_spinner=False)
def read_upload(data: bytes, name: str) -> np.ndarray:
    """Decode uploaded bytes; raises imaging.ImageError naming the file, shows its warnings."""
    from imaging import decode_image

    decoded = decode_image(data, name=name)
    for note in decoded.warnings:
        st.warning(f"{name}: {note}", icon=":material/warning:")
    return decoded.pixels


# ---------------------------------------------------------------- model outputs


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


# ---------------------------------------------------------------- anomaly


@st.cache_resource(show_spinner="Loading autoencoder…", max_entries=8)
def _detector(run_path: str, stamp: float) -> Any:
    del stamp
    from anomaly.scoring import AnomalyDetector

    return AnomalyDetector.from_run(store.load_run(run_path))


def detector(ref: RunRef) -> Any:
    """The run's autoencoder with its recorded scoring (loaded once per process)."""
    return _detector(ref.path, ref.stamp)


@st.cache_data(max_entries=128, show_spinner=False)
def _anomaly(run_key: str, image_keys: tuple[str, ...], _ref: RunRef, _images: list) -> tuple:
    from anomaly.scoring import score_images

    scores, maps, recon = score_images(detector(_ref), _images)
    return np.asarray(scores, dtype=np.float64), maps, recon


def anomaly(ref: RunRef, images: list[np.ndarray]) -> tuple[np.ndarray, list, np.ndarray]:
    """Scores (N,), anomaly maps at original size, reconstructions at model size."""
    keys = tuple(image_key(im) for im in images)
    return _anomaly(ref.key, keys, ref, images)


@st.cache_data(max_entries=16, show_spinner=False)
def _anomaly_scores(run_key: str, paths: tuple[str, ...], _ref: RunRef) -> np.ndarray:
    from anomaly.scoring import score_images

    found = detector(_ref)
    scores = []
    for start in range(0, len(paths), 64):
        chunk = [read_path(p) for p in paths[start : start + 64]]
        scores.append(np.asarray(score_images(found, chunk)[0], dtype=np.float64))
    return np.concatenate(scores) if scores else np.zeros(0)


def anomaly_scores(ref: RunRef, paths: list[str]) -> np.ndarray:
    """Scores of many image files (maps are not kept), for histograms and threshold sweeps."""
    return _anomaly_scores(ref.key, tuple(paths), ref)


# ---------------------------------------------------------------- melting tank

# Series are large (835,200 rows): cache_resource hands out the same frame without copying;
# pages treat them as read-only.


@st.cache_resource(show_spinner=False, max_entries=3)
def demo_series(rows: int, seed: int = 0) -> pd.DataFrame:
    """The deterministic synthetic KAMP-schema series."""
    from synthetic.melting import generate_series

    return generate_series(rows, seed=seed)


@st.cache_resource(show_spinner="Reading the CSV…", max_entries=3)
def uploaded_series(file_id: str, name: str, _data: bytes) -> pd.DataFrame:
    """An uploaded CSV validated by the melting-tank loader (raises KampFormatError)."""
    import io

    from meltingtank.loader import MAX_UPLOAD_ROWS, load_kamp_csv

    buffer = io.BytesIO(_data)
    buffer.name = name
    return load_kamp_csv(buffer, max_rows=MAX_UPLOAD_ROWS)


@st.cache_resource(show_spinner=False, max_entries=6)
def _ng_probability(run_key: str, source_key: str, _ref: RunRef, _frame: pd.DataFrame):
    from meltingtank.inference import predict_series

    predicted = predict_series(_ref.run(), _frame)
    if len(predicted) == len(_frame):
        values = predicted["ng_probability"].to_numpy(dtype=np.float64)
    else:
        merged = _frame[["STD_DT"]].merge(
            predicted[["STD_DT", "ng_probability"]], on="STD_DT", how="left"
        )
        values = merged["ng_probability"].to_numpy(dtype=np.float64)
    values.setflags(write=False)
    return values


def ng_probability(ref: RunRef, source_key: str, frame: pd.DataFrame) -> np.ndarray:
    """The LSTM's NG probability per row of the series (NaN where no window ends yet)."""
    return _ng_probability(ref.key, source_key, ref, frame)

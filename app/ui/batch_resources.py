"""Heavy things the Batch Review page shares across reruns and sessions.

The review log (one connection pool per process) and the loaded models live behind
st.cache_resource; per-image heatmaps are st.cache_data keyed by run and image sha256.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import streamlit as st

import store
from imaging import read_image
from inspection import Inspector
from store.review import ReviewLog, default_url
from ui import overlay
from ui.resources import RunRef, model, runs

THUMB_SIZE = 160


@st.cache_resource(show_spinner=False, max_entries=4)
def _review_log(url: str, images_dir: str) -> ReviewLog:
    return ReviewLog(url, images_dir)


def review_log() -> ReviewLog:
    """The process's review log ($DEFECTLENS_DB_URL or SQLite in the data folder)."""
    return _review_log(default_url(), str(store.data_dir() / "review_images"))


def _run(ref: RunRef) -> store.Run:
    """A store.Run that shares the model the other pages already loaded."""
    return store.Run(path=Path(ref.path), info=ref.info, _model=model(ref))


@st.cache_resource(show_spinner="Loading models…", max_entries=4)
def _inspector(key: str, _classifier: RunRef, _autoencoder: RunRef | None) -> Inspector:
    del key
    autoencoder = None if _autoencoder is None else _run(_autoencoder)
    return Inspector(_run(_classifier), autoencoder)


def inspector(classifier: RunRef, autoencoder: RunRef | None) -> Inspector:
    """Both runs' models, loaded once per process."""
    return _inspector(inspector_key(classifier, autoencoder), classifier, autoencoder)


def inspector_key(classifier: RunRef, autoencoder: RunRef | None) -> str:
    """Changes whenever either run is retrained: the cache key of everything they computed."""
    return f"{classifier.key}|{autoencoder.key if autoencoder else ''}"


def find_run(name: str | None, kind: str) -> RunRef | None:
    """The run a batch was scored with, if it still exists."""
    return next((r for r in runs(kind) if r.name == name), None) if name else None


@st.cache_data(max_entries=256, show_spinner=False)
def stored_image(path: str) -> np.ndarray:
    """A review item's stored copy, decoded."""
    return read_image(path)


@st.cache_data(max_entries=256, show_spinner=False)
def _explanation(key: str, sha256: str, path: str, _inspector: Inspector) -> tuple:
    del key, sha256
    image = stored_image(path)
    cam = _inspector.heatmaps([image])[0]
    maps = _inspector.anomaly_maps([image])
    return cam, None if maps is None else maps[0]


def explanation(
    key: str, sha256: str, path: str, engine: Inspector
) -> tuple[np.ndarray, np.ndarray | None]:
    """(Grad-CAM, anomaly map) over one stored image."""
    return _explanation(key, sha256, path, engine)


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail(key: str, sha256: str, path: str, _inspector: Inspector | None) -> np.ndarray:
    del key, sha256
    image = stored_image(path)
    scale = THUMB_SIZE / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if _inspector is None:
        return overlay.to_rgb(small)
    heat = cv2.resize(_inspector.heatmaps([image])[0], size, interpolation=cv2.INTER_LINEAR)
    return overlay.blend(small, heat, "jet", 0.4)


def thumbnail(key: str, sha256: str, path: str, engine: Inspector | None) -> np.ndarray:
    """A small RGB thumbnail with the Grad-CAM blended in (plain when no runs are left)."""
    return _thumbnail(key, sha256, path, engine)

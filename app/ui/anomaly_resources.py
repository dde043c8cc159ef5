"""The autoencoder's outputs, cached: the detector per run, scores and maps of decoded images,
and scores of many image files for histograms and threshold sweeps."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

import store
from ui.dataset_resources import read_path
from ui.resources import RunRef, image_key


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

"""Cached access to runs and their models, and the content key of a decoded image.

Models live behind st.cache_resource (one instance per process, keyed by run folder and the
model file's modification time, so a retrained run is picked up). Everything derived from
an image (predictions, heatmaps) is st.cache_data keyed by run, image hash, method and layer;
the arrays themselves are passed as underscore arguments so Streamlit does not hash them.
The derived things live beside this module: data sets and images in dataset_resources, the
classifier's outputs in classifier_resources, the autoencoder's in anomaly_resources, the
melting-tank series in melting_resources.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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

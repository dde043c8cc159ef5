"""Data sets found on disk (samples/ and the data folder) and decoded images, cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import store


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

"""Where DefectLens keeps runs and data; environment variables override the defaults."""

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package lives in (the project is installed editable)."""
    return Path(__file__).resolve().parents[1]


def weights_dir() -> Path:
    """Folder holding run folders: $DEFECTLENS_WEIGHTS or <repo>/weights."""
    return Path(os.environ.get("DEFECTLENS_WEIGHTS", repo_root() / "weights"))


def data_dir() -> Path:
    """Folder for generated data and the review database: $DEFECTLENS_DATA or <repo>/data."""
    return Path(os.environ.get("DEFECTLENS_DATA", repo_root() / "data"))

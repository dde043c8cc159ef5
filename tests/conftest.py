"""Test-wide safety: quiet TensorFlow, offline W&B, no test writes into weights/ or data/."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Point runs, data and W&B at a per-test temporary folder."""
    root = tmp_path_factory.mktemp("defectlens")
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(root / "weights"))
    monkeypatch.setenv("DEFECTLENS_DATA", str(root / "data"))
    monkeypatch.setenv("WANDB_DIR", str(root / "wandb"))
    return root

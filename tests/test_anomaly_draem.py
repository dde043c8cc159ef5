"""DRAEM-lite: two-output model, a tiny training run that saves, loads safely and scores."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from test_anomaly_pipeline import make_dataset

import store
from anomaly.evaluation import evaluate_run
from anomaly.model import build_draem, focal_dice_loss
from anomaly.postprocess import ScoringError
from anomaly.scoring import AnomalyDetector, ScoreConfig, anomaly_maps, score_images

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("anomaly_draem")]


def test_draem_outputs_a_reconstruction_and_a_mask_in_unit_range():
    model = build_draem(img_size=32, latent_dim=4, filters=(8, 8), seg_filters=(8, 8))
    recon, mask = model(np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32"))
    assert recon.shape == (2, 32, 32, 1) and mask.shape == (2, 32, 32, 1)
    assert float(np.min(mask)) >= 0.0 and float(np.max(mask)) <= 1.0


def test_focal_dice_loss_is_lower_for_the_right_mask():
    truth = np.zeros((1, 16, 16, 1), np.float32)
    truth[0, 4:8, 4:8] = 1.0
    right = np.clip(truth, 0.05, 0.95)
    wrong = np.clip(1.0 - truth, 0.05, 0.95)
    assert float(focal_dice_loss(truth, right)) < float(focal_dice_loss(truth, wrong))


def test_the_mask_map_needs_the_mask():
    x = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ScoringError, match="DRAEM"):
        anomaly_maps(x, x, ScoreConfig(map="mask", normalize=False, part_mask=False))


@pytest.fixture(scope="module")
def tiny_draem(tmp_path_factory):
    base = tmp_path_factory.mktemp("anomaly_draem")
    data = make_dataset(base / "data")
    env = {**os.environ, "DEFECTLENS_WEIGHTS": str(base / "weights"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "anomaly/train.py", "--data", str(data), "--name", "tinyd"]
    cmd += ["--model", "draem", "--img-size", "32", "--epochs", "2", "--steps", "2"]
    cmd += ["--latent-dim", "4", "--filters", "8,8", "--seg-filters", "8,8", "--batch-size", "4"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return data, base / "weights" / "tinyd"


def test_draem_run_records_its_model_and_mask_scoring(tiny_draem):
    _, run_dir = tiny_draem
    run = store.load_run(run_dir)
    assert run.kind == "autoencoder" and run.info["model"] == "draem"
    assert run.info["score"]["map"] == "mask" and run.info["score"]["normalize"] is False
    assert isinstance(run.info["threshold"], float)
    assert len(run.history) == 2 and "val_anomaly_mask_loss" in run.history
    assert not (run_dir / "error_stats.npy").exists()


def test_draem_run_loads_in_safe_mode_and_scores_through_score_images(tiny_draem):
    data, run_dir = tiny_draem
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True, compile=False)
    assert len(model.outputs) == 2
    files = sorted((data / "test" / "def_front").glob("*.png"))[:2]
    scores, maps, recon = score_images(store.load_run(run_dir), files)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert [m.shape for m in maps] == [(40, 48), (40, 48)]
    assert recon.shape == (2, 32, 32)
    # the map is the segmentation output (smoothed), not the reconstruction error
    detector = AnomalyDetector.from_run(run_dir)
    assert detector.is_draem


def test_draem_run_evaluates(tiny_draem):
    data, run_dir = tiny_draem
    metrics = evaluate_run(run_dir, data)
    for key in ("image_auroc", "pixel_auroc", "f1"):
        assert 0.0 <= metrics[key] <= 1.0

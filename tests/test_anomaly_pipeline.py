"""End to end on a tiny data set: train (CLI), load in safe mode, score, threshold, predict."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import store
from anomaly.evaluation import binned_auroc, evaluate_detector, evaluate_run
from anomaly.predict import main as predict_main
from anomaly.predict import predict_files
from anomaly.scoring import AnomalyDetector, score_images
from imaging import ImageError, discover
from imaging.preprocess import Preprocess

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("anomaly_tiny")]


def _part(rng: np.random.Generator, defect: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 40x48 gray disk on a dark background; a defect is a dark pit on the disk."""
    img = np.full((40, 48), 20, np.uint8)
    cy, cx = 20 + rng.integers(-2, 3), 24 + rng.integers(-2, 3)
    cv2.circle(img, (int(cx), int(cy)), 14, 170, -1)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros_like(img)
    if defect:
        cv2.circle(mask, (int(cx) + 5, int(cy) - 3), 3, 255, -1)
        img[mask > 0] = 30
    return img, mask


def make_dataset(root: Path, n_good: int = 14) -> Path:
    """Class folders plus masks and annotations.csv, like the synthetic generator writes."""
    rng = np.random.default_rng(0)
    rows = []
    layout = {("train", "ok_front"): n_good, ("train", "def_front"): 3}
    layout |= {("test", "ok_front"): 4, ("test", "def_front"): 4}
    for (split, label), count in layout.items():
        (root / split / label).mkdir(parents=True)
        for i in range(count):
            defect = label == "def_front"
            img, mask = _part(rng, defect)
            rel = f"{split}/{label}/{label}_{i:02d}.png"
            cv2.imwrite(str(root / rel), img)
            mask_rel = ""
            if defect:
                mask_rel = f"masks/{split}/{label}_{i:02d}_mask.png"
                (root / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / mask_rel), mask)
            rows.append(
                {
                    "path": rel,
                    "split": split,
                    "label": label,
                    "defect_type": "blowhole" if defect else "",
                    "mask_path": mask_rel,
                }
            )
    pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A dataset and a 2-epoch run trained through the script entry point."""
    base = tmp_path_factory.mktemp("anomaly_tiny")
    data = make_dataset(base / "data")
    env = {**os.environ, "DEFECTLENS_WEIGHTS": str(base / "weights"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "anomaly/train.py", "--data", str(data), "--name", "tiny"]
    cmd += ["--img-size", "32", "--epochs", "2", "--latent-dim", "4", "--batch-size", "4"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return data, base / "weights" / "tiny", done.stdout


def test_training_writes_a_complete_autoencoder_run(tiny):
    _, run_dir, stdout = tiny
    run = store.load_run(run_dir)
    assert run.kind == "autoencoder"
    assert run.info["threshold_method"] == "percentile"
    assert isinstance(run.info["threshold"], float)
    assert run.info["score"]["name"] == "top_k_mean" and run.info["score"]["top_k"] == 0.3
    assert run.info["preprocess"]["size"] == 32
    assert set(run.info["summary"]) == {"image_auroc", "pixel_auroc", "f1"}
    assert len(run.history) == 2
    assert (run_dir / "error_stats.npy").exists()
    assert "image AUROC" in stdout


def test_the_run_loads_in_safe_mode_and_scores_at_original_size(tiny):
    data, run_dir, _ = tiny
    files = sorted((data / "test" / "def_front").glob("*.png"))[:2]
    scores, maps, recon = score_images(store.load_run(run_dir), files)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert [m.shape for m in maps] == [(40, 48), (40, 48)]
    assert recon.shape == (2, 32, 32)


def test_the_stored_threshold_decides_anomalous(tiny, tmp_path):
    data, run_dir, _ = tiny
    files = sorted((data / "test").rglob("*.png"))
    run = store.load_run(run_dir)
    frame = predict_files(run, files, progress=False)
    assert (frame["anomalous"] == (frame["score"] > run.info["threshold"])).all()
    # move the stored threshold between two scores: the decisions must follow run.json
    ranked = np.sort(frame["score"].to_numpy())
    info = json.loads((run_dir / "run.json").read_text())
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("model.keras", "error_stats.npy"):
        (moved / name).write_bytes((run_dir / name).read_bytes())
    info["threshold"] = float((ranked[3] + ranked[4]) / 2)
    (moved / "run.json").write_text(json.dumps(info))
    again = predict_files(AnomalyDetector.from_run(moved), files, progress=False)
    assert int(again["anomalous"].sum()) == len(files) - 4


def test_a_corrupt_image_is_reported_and_the_rest_are_scored(tiny, tmp_path, capsys):
    data, run_dir, _ = tiny
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    good = sorted((data / "test" / "ok_front").glob("*.png"))[0]
    out = tmp_path / "scores.csv"
    argv = ["--run", str(run_dir), "--images", str(good), str(bad), "--out", str(out)]
    argv += ["--maps", str(tmp_path / "maps")]
    assert predict_main(argv) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert frame.loc[1, "path"] == str(bad) and frame.loc[1, "error"] != ""
    assert frame.loc[0, "error"] == "" and float(frame.loc[0, "score"]) >= 0
    assert (tmp_path / "maps" / f"{good.stem}_map.png").exists()
    assert "1 unreadable" in capsys.readouterr().out


def test_score_images_names_the_corrupt_file(tiny, tmp_path):
    _, run_dir, _ = tiny
    bad = tmp_path / "truncated.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="truncated.png"):
        score_images(store.load_run(run_dir), [bad])


def test_evaluation_reports_image_and_pixel_auroc_and_f1(tiny):
    data, run_dir, _ = tiny
    metrics = evaluate_run(run_dir, data)
    assert metrics["n_images"] == 8 and metrics["n_defective"] == 4
    for key in ("image_auroc", "pixel_auroc", "f1"):
        assert 0.0 <= metrics[key] <= 1.0
    cm = metrics["confusion_matrix"]
    assert (cm["labels"], cm["positive_class"]) == (["good", "defect"], "defect")
    assert [sum(row) for row in cm["matrix"]] == [4, 4]  # rows are the true class
    assert "confusion_labels" not in metrics


def test_training_writes_the_confusion_record_into_metrics_json(tiny):
    _, run_dir, _ = tiny
    metrics = store.load_run(run_dir).metrics
    cm = metrics["confusion_matrix"]
    assert {k: v for k, v in cm.items() if k != "matrix"} == {
        "labels": ["good", "defect"],
        "rows": "true class",
        "columns": "predicted class",
        "positive_class": "defect",
    }
    (_, _), (missed, caught) = cm["matrix"]
    assert np.sum(cm["matrix"]) == metrics["n_images"] == 8
    assert metrics["recall"] == pytest.approx(caught / (missed + caught))


class _BrightnessDetector:
    """Scores an image by its mean brightness; no masks, so no pixel AUROC."""

    threshold = 100 / 255
    preprocess = Preprocess(size=8)

    def score_arrays(self, x):
        return x.mean(axis=(1, 2, 3)), x[..., 0], x[..., 0]


def test_evaluation_confusion_matrix_by_hand(tmp_path):
    values = {"ok_front": [10, 50, 200], "def_front": [30, 220]}
    for label, levels in values.items():
        (tmp_path / "test" / label).mkdir(parents=True)
        for i, level in enumerate(levels):
            cv2.imwrite(
                str(tmp_path / "test" / label / f"{i}.png"), np.full((8, 8), level, np.uint8)
            )
    metrics = evaluate_detector(_BrightnessDetector(), discover(tmp_path))
    # flagged above 100: good 10, 50 pass and 200 is flagged; defect 30 is missed, 220 caught
    assert metrics["confusion_matrix"] == {
        "labels": ["good", "defect"],
        "matrix": [[2, 1], [1, 1]],
        "rows": "true class",
        "columns": "predicted class",
        "positive_class": "defect",
    }
    assert (metrics["precision"], metrics["recall"]) == (0.5, 0.5)


def test_binned_auroc_matches_the_exact_value():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 5000), rng.normal(1, 1, 500)
    edges = np.linspace(-6, 7, 20001)
    binned = binned_auroc(np.histogram(pos, edges)[0], np.histogram(neg, edges)[0])
    exact = roc_auc_score(np.r_[np.zeros(5000), np.ones(500)], np.r_[neg, pos])
    assert binned == pytest.approx(exact, abs=1e-4)

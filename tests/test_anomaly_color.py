"""Colour anomaly runs: PatchCore keeps three channels from decode to patch features.

The test parts carry a stain of the same brightness as the part (equal luminance, other hue):
a gray model cannot see it by construction, a colour model must.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

import store
from anomaly.scoring import AnomalyDetector
from anomaly.train import main as train_main

pytestmark = pytest.mark.slow  # fits two PatchCore runs

SIZE = 64
PART = (150, 150, 160)  # RGB; luminance 0.299 R + 0.587 G + 0.114 B = 151.1
STAIN = (230, 110, 150)  # RGB; luminance 150.5: the same gray, another colour


def _part(rng: np.random.Generator) -> np.ndarray:
    img = np.full((SIZE, SIZE, 3), 60, np.uint8)
    cv2.circle(img, (SIZE // 2, SIZE // 2), SIZE // 2 - 6, PART, -1)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def make_colour_set(root, n_train=24, n_test=8, seed=0):
    """MVTec layout: good parts for training, good and stained parts with masks for testing."""
    rng = np.random.default_rng(seed)

    def save(path, pixels):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)

    for i in range(n_train):
        save(root / "train" / "good" / f"{i:03d}.png", _part(rng))
    for i in range(n_test):
        save(root / "test" / "good" / f"{i:03d}.png", _part(rng))
        img, mask = _part(rng), np.zeros((SIZE, SIZE), np.uint8)
        cx, cy = (int(v) for v in rng.integers(22, SIZE - 22, size=2))
        cv2.circle(mask, (cx, cy), 6, 255, -1)
        img[mask > 0] = STAIN
        save(root / "test" / "stain" / f"{i:03d}.png", img)
        save(root / "ground_truth" / "stain" / f"{i:03d}_mask.png", mask)
    return root


def _classifier_run(root, channels: int):
    """An untrained simple_cnn classifier run (random features are enough to see a colour)."""
    from classification.models import SIMPLE_CNN_CAM_LAYER, build_model
    from imaging import Preprocess

    color = "rgb" if channels == 3 else "gray"
    run_dir = store.create_run_dir(f"cnn_{color}", root=root)
    store.save_model(run_dir, build_model("simple_cnn", 2, SIZE, channels=channels))
    store.write_run_info(
        run_dir,
        {
            "kind": "classifier",
            "model": "simple_cnn",
            "img_size": SIZE,
            "color": color,
            "class_names": ["ok_front", "def_front"],
            "normal_class": "ok_front",
            "preprocess": Preprocess(size=SIZE, color=color).to_dict(),
            "cam_layer": SIMPLE_CNN_CAM_LAYER,
        },
    )
    return run_dir


@pytest.fixture(scope="module")
def colour_runs(tmp_path_factory):
    """(data, {"rgb": run dir, "gray": run dir}): PatchCore on a colour and a gray backbone."""
    base = tmp_path_factory.mktemp("colour")
    data = make_colour_set(base / "data")
    mp = pytest.MonkeyPatch()
    mp.setenv("DEFECTLENS_WEIGHTS", str(base / "weights"))
    runs = {}
    for color, channels in (("rgb", 3), ("gray", 1)):
        backbone = _classifier_run(base / "cls", channels)
        argv = ["--data", str(data), "--name", f"pc_{color}", "--model", "patchcore"]
        argv += ["--img-size", str(SIZE), "--backbone-run", str(backbone), "--coreset", "200"]
        argv += ["--threshold", "percentile"]
        assert train_main(argv) == 0
        runs[color] = base / "weights" / f"pc_{color}"
    mp.undo()
    return data, runs


def _auroc(run_dir, data) -> float:
    detector = AnomalyDetector.from_run(run_dir)
    paths = sorted((data / "test").rglob("*.png"))
    x = detector.preprocess.apply_batch([np.asarray(Image.open(p)) for p in paths])
    scores, maps, images = detector.score_arrays(x)
    assert maps.shape == images.shape == (len(paths), SIZE, SIZE)
    return roc_auc_score([p.parent.name == "stain" for p in paths], scores)


def test_colour_patchcore_sees_a_stain_that_gray_cannot(colour_runs):
    data, runs = colour_runs
    rgb = store.load_run(runs["rgb"])
    assert rgb.info["preprocess"]["color"] == "rgb"  # inherited from the backbone run
    assert store.load_run(runs["gray"]).info["preprocess"]["color"] == "gray"
    assert rgb.load_model().input_shape[-1] == 3
    colour_auc, gray_auc = _auroc(runs["rgb"], data), _auroc(runs["gray"], data)
    assert colour_auc >= 0.95, colour_auc
    assert gray_auc <= colour_auc - 0.2, (gray_auc, colour_auc)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "draem", "--color", "rgb"], "use --model patchcore or padim"),
        (["--model", "patchcore", "--color", "gray", "--backbone-run", "RGB"], "3-channel"),
    ],
)
def test_colour_options_that_cannot_work_exit_2_with_one_line(
    colour_runs, tmp_path, monkeypatch, capsys, extra, message
):
    data, _ = colour_runs
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(tmp_path / "w"))
    backbone = str(_classifier_run(tmp_path / "cls", 3))
    argv = ["--data", str(data), "--name", "x", "--img-size", str(SIZE)]
    argv += [backbone if a == "RGB" else a for a in extra]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err

"""End-to-end: tiny trainings make run folders that load and predict; batch prediction."""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import store
from classification.inference import PredictError, predict_images
from classification.predict import main as predict_main
from classification.schedule import callbacks, learning_rate
from classification.splits import classifier_splits
from classification.train import main as train_main
from classification.training import TrainConfig, _class_weights, train
from imaging import discover

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("classification_train")]


def _part(rng: np.random.Generator, defect: str | None, size: int = 72) -> np.ndarray:
    """A toy part: bright disk, dark hub, noise; defects are dark pits or a bright streak."""
    img = np.full((size, size), 25, np.uint8)
    centre = tuple(int(v) for v in size // 2 + rng.integers(-3, 4, 2))
    cv2.circle(img, centre, size * 2 // 5, 150, -1)
    cv2.circle(img, centre, size // 8, 60, -1)
    img = cv2.add(img, rng.integers(0, 20, img.shape, dtype=np.uint8))
    if defect == "pit":
        for _ in range(3):
            x, y = (np.array(centre) + rng.integers(-size // 4, size // 4, 2)).tolist()
            cv2.circle(img, (x, y), int(rng.integers(3, 5)), 5, -1)
    elif defect == "streak":
        x, y = (np.array(centre) + rng.integers(-size // 5, size // 5, 2)).tolist()
        cv2.line(img, (x - 10, y - 6), (x + 10, y + 6), 250, 2)
    return img


def _write_set(root: Path, classes: dict[str, str | None], n_train: int, n_test: int) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for label, defect in classes.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{label}_{i:03d}.png"), _part(rng, defect))
    return root


@pytest.fixture(scope="module")
def binary_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("binary")
    return _write_set(root, {"ok_front": None, "def_front": "pit"}, n_train=20, n_test=6)


def _config(data: Path, **overrides) -> TrainConfig:
    # min_steps=0: one pass per epoch, so these tiny sets stay quick (see smalldata).
    base = {"data": str(data), "epochs": 1, "img_size": 32, "batch_size": 8, "name": "tiny"}
    base["min_steps"] = 0
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def trained_run(binary_data, tmp_path_factory) -> Path:
    """One simple_cnn run shared by the prediction tests (weights kept out of the repo)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEFECTLENS_WEIGHTS", str(tmp_path_factory.mktemp("weights")))
        return train(_config(binary_data, epochs=3, img_size=48, lr=3e-3), verbose=0)


@pytest.mark.parametrize("model", ["simple_cnn", "mobilenetv2", "efficientnetb0", "resnet50"])
def test_each_model_family_trains_into_a_run_that_loads_and_predicts(model, binary_data):
    # Tracing a big backbone's train step costs far more than a few eager steps at 32 px;
    # graph mode is exercised by every simple_cnn test. An eager step costs the same for 8 or
    # 64 images (Python per op), so a backbone takes the whole training set in one step.
    eager = model != "simple_cnn"
    batch = 64 if eager else 8
    config = _config(
        binary_data, model=model, name=f"tiny_{model}", run_eagerly=eager, batch_size=batch
    )
    run_dir = train(config, verbose=0)
    run = store.load_run(run_dir.name)
    assert run.info["model"] == model
    assert run.info["class_names"] == ["ok_front", "def_front"]
    assert run.info["defect_class"] == "def_front"
    probs = run.load_model().predict(np.zeros((2, 32, 32, 1), np.float32), verbose=0)
    assert probs.shape == (2, 2)


def test_run_folder_records_what_inference_needs(trained_run):
    run = store.load_run(trained_run)
    info = run.info
    assert info["kind"] == "classifier"
    assert info["preprocess"] == {"size": 48, "crop": 1.0, "clahe": False, "color": "gray"}
    assert info["cam_layer"] == "last_conv"
    assert info["data"]["layout"] == "class_folders"
    assert info["data"]["counts"]["test"] == {"def_front": 6, "ok_front": 6}
    assert set(info["summary"]) == {"accuracy", "macro_f1", "defect_f1", "roc_auc"}
    assert len(run.history) == info["epochs_run"]
    metrics = run.metrics
    cm = metrics["confusion_matrix"]
    assert {k: v for k, v in cm.items() if k != "matrix"} == {
        "labels": ["ok_front", "def_front"],
        "rows": "true class",
        "columns": "predicted class",
        "positive_class": "def_front",
    }
    assert [sum(row) for row in cm["matrix"]] == [6, 6]  # rows are the true class
    assert metrics["per_class"]["def_front"]["recall"] == pytest.approx(cm["matrix"][1][1] / 6)
    assert set(metrics["per_class"]) == {"ok_front", "def_front"}


def test_cosine_schedule_warms_up_then_decays_to_zero():
    schedule = learning_rate("cosine", 1e-3, epochs=10, steps_per_epoch=10)
    rate = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert rate[0] == pytest.approx(1e-4)  # warm-up starts at lr / 10 ...
    assert rate[1] == pytest.approx(1e-4 + 0.5 * 9e-4)  # ... rises linearly ...
    assert rate[2] == pytest.approx(1e-3)  # ... to lr after 10 % of the steps
    assert rate[3] == pytest.approx(0.5e-3)  # half-way through the decay: cos(pi / 2)
    assert rate[4] == pytest.approx(0.0, abs=1e-9)  # zero at the last step
    assert learning_rate("plateau", 2e-3, epochs=10, steps_per_epoch=10) == 2e-3


@pytest.mark.parametrize(
    ("schedule", "lr", "message"),
    [("linear", 1e-3, "--schedule 'linear'"), ("cosine", 0, "--lr 0")],
)
def test_bad_schedule_options_name_the_option(schedule, lr, message):
    with pytest.raises(ValueError, match=message):
        learning_rate(schedule, lr, epochs=1, steps_per_epoch=1)


def test_only_the_plateau_schedule_adds_reduce_lr_on_plateau(tmp_path):
    class NoTracker:
        def keras_callback(self):
            return None

    def names(schedule):
        return [type(c).__name__ for c in callbacks(tmp_path, 4, schedule, NoTracker())]

    assert "ReduceLROnPlateau" in names("plateau")
    assert "ReduceLROnPlateau" not in names("cosine")
    assert {"EarlyStopping", "ModelCheckpoint", "LogLearningRate"} <= set(names("cosine"))


def test_history_records_the_learning_rate_schedule(trained_run):
    run = store.load_run(trained_run)
    assert run.info["schedule"] == "cosine"
    rates = list(run.history["learning_rate"])
    assert len(rates) == run.info["epochs_run"] == 3
    # Epoch ends of a 3-epoch warm-up + cosine run at lr 3e-3: decaying towards zero.
    assert rates[0] > rates[1] > rates[2] >= 0
    assert rates[0] <= 3e-3


def test_crop_recipe_is_recorded_for_inference(binary_data):
    run = store.load_run(train(_config(binary_data, aug="noise_crop"), verbose=0))
    assert run.info["preprocess"]["crop"] < 1.0
    assert run.info["aug"] == "noise_crop"


def test_a_name_clash_gets_a_suffix(binary_data):
    first = train(_config(binary_data, name="same"), verbose=0)
    second = train(_config(binary_data, name="same"), verbose=0)
    assert (first.name, second.name) == ("same", "same-2")


def test_multiclass_run_lists_its_defect_classes(tmp_path):
    data = _write_set(
        tmp_path / "types", {"good": None, "pit": "pit", "streak": "streak"}, n_train=8, n_test=3
    )
    run = store.load_run(train(_config(data), verbose=0))
    assert run.info["class_names"] == ["good", "pit", "streak"]
    assert run.info["defect_classes"] == ["pit", "streak"]
    assert len(run.metrics["confusion_matrix"]["matrix"]) == 3


def test_offline_wandb_run_leaves_its_metrics_on_disk(binary_data, isolated_dirs, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run = store.load_run(train(_config(binary_data, wandb=True), verbose=0))
    assert run.info["wandb"]["enabled"] and run.info["wandb"]["mode"] == "offline"
    logs = list((isolated_dirs / "wandb").rglob("*.wandb"))
    assert len(logs) == 1
    content = _settled_bytes(logs[0])
    assert b"val_loss" in content and b"test/accuracy" in content
    tables = [p.name for p in (isolated_dirs / "wandb").rglob("*.table.json")]
    assert any(name.startswith("samples") for name in tables)
    assert any(name.startswith("confusion_matrix") for name in tables)


def _settled_bytes(path: Path, rounds: int = 60) -> bytes:
    """The W&B service may still be flushing its log after finish(): read once it stops growing."""
    previous = b""
    for _ in range(rounds):
        content = path.read_bytes()
        if content == previous and len(content) > 64:
            return content
        previous = content
        time.sleep(0.5)
    return previous


def test_failed_training_leaves_no_run_folder(binary_data):
    with pytest.raises(ValueError, match="simple_cnn has no ImageNet weights"):
        train(_config(binary_data, weights="imagenet", name="broken"), verbose=0)
    assert not (store.weights_dir() / "broken").exists()


def test_class_weights_balance_rare_classes():
    weights = _class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights[1] == pytest.approx(3 * weights[0])


def test_mvtec_layout_splits_test_for_the_classifier(tmp_path):
    root = tmp_path / "mvtec"
    rng = np.random.default_rng(1)
    for folder, n in (("train/good", 4), ("test/good", 10), ("test/pit", 10)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{i:03d}.png"), _part(rng, None))
    (root / "ground_truth" / "pit").mkdir(parents=True)
    for i in range(10):
        cv2.imwrite(str(root / "ground_truth/pit" / f"{i:03d}_mask.png"), np.zeros((8, 8), "u1"))
    spec, notes = classifier_splits(discover(root), seed=0)
    counts = spec.counts()
    assert set(counts) == {"train", "val", "test"}
    assert all(set(per) == {"good", "pit"} for per in counts.values())
    assert notes


def test_csv_without_splits_gets_test_and_val_held_out(binary_data, tmp_path):
    paths = sorted(binary_data.glob("train/*/*.png"))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [str(p) for p in paths], "label": [p.parent.name for p in paths]}).to_csv(
        manifest, index=False
    )
    spec, notes = classifier_splits(discover(manifest), seed=0)
    assert spec.splits == ["train", "val", "test"]
    assert len(notes) == 2


def test_aug_list_prints_the_recipes(capsys):
    assert train_main(["--aug", "list"]) == 0
    assert "noise_crop" in capsys.readouterr().out


def test_train_script_runs_as_a_file():
    script = Path(__file__).parents[1] / "classification" / "train.py"
    out = subprocess.run(
        [sys.executable, str(script), "--aug", "list"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "heavy" in out.stdout


@pytest.fixture
def mixed_folder(binary_data, tmp_path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for src in sorted(binary_data.glob("test/*/*_00[0-2].png")):
        (folder / src.name).write_bytes(src.read_bytes())
    good = (folder / "ok_front_000.png").read_bytes()
    (folder / "corrupt.png").write_bytes(good[: len(good) // 3])
    return folder


def test_predict_reports_a_corrupt_file_and_predicts_the_others(trained_run, mixed_folder):
    frame = predict_images(trained_run, sorted(mixed_folder.iterdir()), batch_size=4)
    assert len(frame) == 7
    bad = frame[frame.status == "error"]
    assert list(bad.file.map(lambda f: Path(f).name)) == ["corrupt.png"]
    assert "truncated" in bad.error.iloc[0]
    ok = frame[frame.status == "ok"]
    np.testing.assert_allclose(ok.p_ok_front + ok.p_def_front, 1.0, rtol=1e-5)
    assert set(ok.predicted_class) <= {"ok_front", "def_front"}
    assert (ok.width == 72).all()


def test_predict_accepts_arrays_and_uploads(trained_run, mixed_folder):
    raw = (mixed_folder / "def_front_000.png").read_bytes()
    array = cv2.imread(str(mixed_folder / "ok_front_000.png"), cv2.IMREAD_GRAYSCALE)
    frame = predict_images(trained_run, [("upload.png", raw), array])
    assert list(frame.file) == ["upload.png", "image_1"]
    assert (frame.status == "ok").all()


def test_predict_cli_writes_csv_and_summary(trained_run, mixed_folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert (
        predict_main(["--run", str(trained_run), "--images", str(mixed_folder), "--out", str(out)])
        == 0
    )
    frame = pd.read_csv(out)
    assert (frame.status == "error").sum() == 1
    summary = capsys.readouterr().out
    assert "6 predicted, 1 unreadable" in summary
    assert "corrupt.png" in summary


def test_predict_with_cam_and_boxes_maps_them_to_original_pixels(trained_run, mixed_folder):
    pytest.importorskip("explain")
    paths = [p for p in sorted(mixed_folder.iterdir()) if p.name != "corrupt.png"]
    frame = predict_images(trained_run, paths, cam="gradcam", boxes=True, keep_cams=True)
    assert frame.cam.iloc[0].shape == (48, 48)
    assert frame.cam_peak_x.between(0, 72).all()
    for row in frame.itertuples():
        boxes = json.loads(row.boxes)
        assert all(0 <= b["x_min"] <= b["x_max"] <= 72 for b in boxes)
        if not row.is_defect:
            assert boxes == []


def test_predict_refuses_a_run_of_another_kind(tmp_path):
    run_dir = store.create_run_dir("ae")
    store.write_run_info(run_dir, {"kind": "autoencoder"})
    with pytest.raises(PredictError, match="autoencoder run"):
        predict_images(run_dir, [])

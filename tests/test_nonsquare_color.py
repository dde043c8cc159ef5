"""Non-square and colour parts: exact geometry back to the original pixels, and tiny runs that
train, predict, explain and score end to end with --img-size HxW and --color rgb."""

import json

import cv2
import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

import explain
from classification import train
from classification.inference import predict_images
from explain.evaluation import evaluate
from imaging import Preprocess
from imaging.preprocess import PreprocessError, parse_size
from store import load_run

pytestmark = pytest.mark.xdist_group("nonsquare")


# --- geometry ---------------------------------------------------------------------------------


def test_sizes_parse_as_height_by_width_and_square_stays_an_int():
    assert parse_size("96x384") == (96, 384) and parse_size(160) == (160, 160)
    assert Preprocess(size="96x384").to_dict()["size"] == [96, 384]
    assert Preprocess(size=(64, 64)).to_dict()["size"] == 64
    assert Preprocess.from_dict({"size": [96, 384], "color": "rgb"}).input_shape == (96, 384, 3)
    for bad in ("96x", "96x384x3", "axb", (4, 400)):
        with pytest.raises(PreprocessError, match="size"):
            Preprocess(size=bad)
    with pytest.raises(PreprocessError, match="color must be one of gray, rgb"):
        Preprocess(color="cmyk")


def test_train_cli_refuses_a_bad_size_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(["--data", "x", "--img-size", "96by384"])
    assert exc.value.code == 2
    assert "--img-size" in capsys.readouterr().err


def test_boxes_map_back_to_the_original_non_square_pixels_exactly():
    original = (60, 240)  # H x W, scale 2.5 on both axes to a 24 x 96 input
    assert Preprocess(size=(24, 96)).box_to_original((4, 2, 8, 6), original) == (10, 5, 20, 15)
    # crop 0.8 cuts round(0.1 * 60) = 6 px from every edge: window 48 x 228 -> 24 x 96
    cropped = Preprocess(size=(24, 96), crop=0.8)
    assert cropped.crop_window(original) == (6, 54, 6, 234)
    assert cropped.box_to_original((4, 2, 8, 6), original) == (16, 10, 25, 18)


def bright_patch_detector(shape) -> keras.Model:
    """Hand-set weights: class 1 grows with bright 3x3 patches in any channel."""
    inp = keras.Input(shape)
    conv = layers.Conv2D(1, 3, padding="same", activation="relu", name="detector")
    x = layers.GlobalMaxPooling2D()(conv(inp))
    dense = layers.Dense(2, activation="softmax", name="pred")
    model = keras.Model(inp, dense(x))
    conv.set_weights(
        [np.full((3, 3, shape[2], 1), 1 / (9 * shape[2]), np.float32), np.array([-0.5], np.float32)]
    )
    dense.set_weights([np.array([[-10.0, 10.0]], np.float32), np.zeros(2, np.float32)])
    return model


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_heatmap_peak_lands_on_the_defect_of_an_elongated_part(color):
    rng = np.random.default_rng(0)
    original = rng.integers(20, 60, (120, 480, 3), dtype=np.uint8)
    y0, x0 = 70, 355  # a 12 x 20 defect near the right end
    original[y0 : y0 + 12, x0 : x0 + 20] = (250, 250, 250)
    prep = Preprocess(size=(30, 120), color=color)
    x = prep.apply_batch([original])
    assert x.shape == (1, 30, 120, prep.channels)
    cam = explain.compute_cams(bright_patch_detector(prep.input_shape), x, class_index=1)[0]
    full = prep.cam_to_original(cam, original.shape[:2])
    assert full.shape == (120, 480)
    y, xx = np.unravel_index(np.argmax(full), full.shape)
    assert y0 <= y < y0 + 12 and x0 <= xx < x0 + 20, (y, xx)


def test_rgb_preprocessing_keeps_the_colour_and_gray_does_not():
    stain = np.zeros((40, 80, 3), np.uint8)
    stain[..., 0] = 200  # pure red
    rgb = Preprocess(size=(20, 40), color="rgb").apply(stain)
    gray = Preprocess(size=(20, 40)).apply(stain)
    assert rgb.shape == (20, 40, 3) and gray.shape == (20, 40, 1)
    np.testing.assert_allclose(rgb[0, 0], [200 / 255, 0, 0], atol=1e-6)
    assert gray[0, 0, 0] == pytest.approx(60 / 255, abs=2 / 255)  # ITU-R 601 luma of red


# --- end to end -------------------------------------------------------------------------------


def write_strips(root, height=120, width=480, n_good=10, n_defect=10, seed=0):
    """A tiny MVTec tree of elongated rods; defects are a coloured stain with an exact mask."""
    rng = np.random.default_rng(seed)

    def rod():
        img = np.full((height, width, 3), 70, np.uint8)
        img[height // 4 : 3 * height // 4] = (150, 150, 160)
        return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)

    for i in range(4):
        path = root / "train" / "good" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rod()).save(path)
    for i in range(n_good):
        path = root / "test" / "good" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rod()).save(path)
    for i in range(n_defect):
        img, mask = rod(), np.zeros((height, width), np.uint8)
        cx, cy = int(rng.integers(40, width - 40)), int(rng.integers(height // 3, 2 * height // 3))
        cv2.ellipse(mask, (cx, cy), (22, 10), 0, 0, 360, 255, -1)
        img[mask > 0] = (220, 40, 30)
        for folder, pixels, name in (("test", img, f"{i:03d}.png"), ("ground_truth", mask, None)):
            path = root / folder / "stain" / (name or f"{i:03d}_mask.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


@pytest.fixture(scope="module")
def strips(tmp_path_factory):
    return write_strips(tmp_path_factory.mktemp("strips") / "rods")


@pytest.mark.slow  # trains two runs
@pytest.mark.parametrize(
    ("size", "color", "model_name"),
    [("96x384", "gray", "simple_cnn"), ("48x160", "rgb", "simple_cnn")],
)
def test_non_square_and_rgb_runs_train_predict_explain_and_score(strips, size, color, model_name):
    name = f"strip_{color}"
    argv = ["--data", str(strips), "--model", model_name, "--img-size", size, "--color", color]
    argv += ["--epochs", "1", "--batch-size", "8", "--aug", "flip", "--name", name]
    assert train.main(argv) == 0
    run = load_run(name)
    height, width = parse_size(size)
    channels = 3 if color == "rgb" else 1
    info = json.loads((run.path / "run.json").read_text())
    assert info["img_size"] == [height, width] and info["color"] == color
    assert info["preprocess"]["size"] == [height, width] and info["preprocess"]["color"] == color
    model = run.load_model()
    assert tuple(model.inputs[0].shape[1:]) == (height, width, channels)

    paths = sorted(str(p) for p in (strips / "test" / "stain").glob("*.png"))[:3]
    frame = predict_images(run, paths, cam="gradcam", boxes=True)
    assert (frame["status"] == "ok").all()
    assert (frame["cam_peak_x"].between(0, 480) & frame["cam_peak_y"].between(0, 120)).all()
    for boxes in frame["boxes"].dropna():
        for box in json.loads(boxes):
            assert 0 <= box["x_min"] <= box["x_max"] <= 480
            assert 0 <= box["y_min"] <= box["y_max"] <= 120

    prep = Preprocess.from_dict(info["preprocess"])
    x = prep.apply_batch([np.asarray(Image.open(p)) for p in paths])
    for layer in explain.candidate_layers(model)[::4]:
        cams = explain.compute_cams(model, x, "gradcam++", layer)
        assert cams.shape == (3, height, width) and np.isfinite(cams).all()

    report = evaluate(run, strips, limit=4)
    stains = report["summary"]["stain"]
    assert stains["pointing_hit"]["n"] > 0
    assert 0.0 <= stains["pointing_hit"]["mean"] <= 1.0
    assert 0.0 <= stains["energy_inside"]["mean"] <= 1.0

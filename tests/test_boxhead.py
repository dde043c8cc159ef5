"""The box head (explain.boxhead, trained by classification.boxhead): feature levels for every
zoo family, gated boxes on hand-made maps, training on a masked set, the CLI, and
`explain.evaluate --boxes head`."""

from __future__ import annotations

import json

import cv2
import keras
import numpy as np
import pytest
from masked_sets import write_masked_set, write_unmasked_set

import store
from classification import boxhead
from classification import train as train_module
from classification.boxhead import train_box_head
from classification.models import MODEL_NAMES, build_model, cam_layer_name
from explain import evaluate as evaluate_cli
from explain.boxhead import (
    build_head,
    feature_extractor,
    head_boxes,
    level_scales,
    load_box_head,
    pyramid_layers,
)
from explain.layers import ExplainError


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_zoo_family_gets_a_feature_pyramid_ending_at_its_cam_layer(name):
    keras.utils.set_random_seed(0)
    model = build_model(name, 2, 64)
    paths = pyramid_layers(model, cam_layer_name(name))
    assert paths[-1].split("/")[-1] == cam_layer_name(name).split("/")[-1]
    x = np.random.default_rng(0).random((2, 64, 64, 1)).astype(np.float32)
    maps = feature_extractor(model, paths)(x)
    sizes = [m.shape[1] for m in maps]
    assert sizes == sorted(set(sizes), reverse=True), f"one level per size, finest first: {sizes}"
    assert max(sizes) <= 32, "nothing finer than half the input"
    head = build_head([tuple(m.shape[1:]) for m in maps], level_scales(maps))
    out = np.asarray(head(maps))
    assert out.shape == (2, max(sizes), max(sizes), 1)
    assert ((out > 0) & (out < 1)).all()


def test_simple_cnn_levels_are_the_last_layer_at_each_size():
    model = build_model("simple_cnn", 2, 160)
    assert pyramid_layers(model) == ["block1_relu", "block2_relu", "last_conv"]


def test_head_boxes_keep_only_regions_the_hot_heatmap_touches():
    prob = np.zeros((60, 80), np.float32)
    prob[10:14, 10:30] = 0.9  # a thin region under the heatmap's hot spot
    prob[40:50, 60:70] = 0.8  # a region the heatmap does not touch
    prob[5:6, 70:72] = 0.9  # under min_area
    cam = np.zeros((60, 80), np.float32)
    cam[8:16, 8:16] = 1.0
    cam[5:7, 69:73] = 1.0
    boxes = head_boxes(prob, cam, threshold=0.5, min_area=4)
    assert [b.as_tuple() for b in boxes] == [(10, 10, 30, 14)]
    assert boxes[0].score == pytest.approx(1.0)  # the heatmap's peak inside, as for CAM boxes
    assert boxes[0].mean == pytest.approx(cam[10:14, 10:30].mean())
    assert boxes[0].area == 80
    # A gate at a fraction of the peak, like the page's "Fixed" threshold.
    warm = cam.copy()
    warm[45, 65] = 0.6  # the second region is warm: hot at a gate of half the peak, not at 0.7
    assert len(head_boxes(prob, warm, threshold=0.5, min_area=4, gate=0.5)) == 2
    assert len(head_boxes(prob, warm, threshold=0.5, min_area=4, gate=0.7)) == 1
    assert head_boxes(prob, np.zeros_like(cam)) == []


def test_head_boxes_refuse_maps_of_different_shapes():
    with pytest.raises(ExplainError, match="differ in shape"):
        head_boxes(np.zeros((4, 4)), np.zeros((5, 4)))


@pytest.fixture(scope="module")
def classifier_on_masks(tmp_path_factory):
    """A masked class-folder set (bright bars on disks) and a classifier run trained on it."""
    weights = tmp_path_factory.mktemp("boxhead_weights")

    def block(mask, rng):
        y, x = (int(v) for v in rng.integers(12, 30, 2))
        cv2.rectangle(mask, (x, y), (x + 7, y + 4), 255, -1)

    root = write_masked_set(
        tmp_path_factory.mktemp("boxhead_data"),
        {"train": 24, "test": 6},
        48,
        (18, 110),
        block,
        defect_value=250,
        seed=3,
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("DEFECTLENS_WEIGHTS", str(weights))
    argv = ["--data", str(root), "--epochs", "3", "--img-size", "48", "--batch-size", "8"]
    assert train_module.main([*argv, "--name", "bars", "--masks", "off"]) == 0
    yield root, weights / "bars"
    mp.undo()


@pytest.mark.slow
def test_a_trained_head_marks_the_defects_and_is_saved_with_the_run(classifier_on_masks):
    data, run_dir = classifier_on_masks
    model_bytes = (run_dir / "model.keras").read_bytes()
    record = train_box_head(str(run_dir), str(data), epochs=25, progress=False)
    assert (run_dir / "model.keras").read_bytes() == model_bytes  # the classifier is untouched
    run = store.load_run(run_dir)
    assert run.info["box_head"] == json.loads(json.dumps(record))
    assert record["layers"][-1] == "last_conv" and record["grid"] == [24, 24]
    assert record["loss"][-1] < record["loss"][0]
    assert record["held_out"]["images"] >= 1  # the classifier's own validation images
    head = load_box_head(run)
    from imaging import Preprocess, read_image, to_gray

    pre = Preprocess.from_dict(run.info["preprocess"])
    inside, outside = [], []
    for i in range(6):
        image = read_image(str(data / "test" / "def_front" / f"{i:02d}.png"))
        mask = to_gray(read_image(str(data / "masks" / f"test_{i:02d}.png"))) > 127
        prob = pre.cam_to_original(head.maps(pre.apply_batch([image]))[0], mask.shape)
        inside.append(prob[mask].mean())
        outside.append(prob[~mask].mean())
    # On unseen parts the head is far more sure inside a defect than anywhere else.
    assert np.mean(inside) > 0.4 and np.mean(outside) < 0.15, (inside, outside)


@pytest.mark.slow
def test_evaluate_judges_the_box_heads_boxes_when_asked(classifier_on_masks, capsys):
    data, run_dir = classifier_on_masks
    if not (run_dir / boxhead.HEAD_FILE).exists():
        train_box_head(str(run_dir), str(data), epochs=25, progress=False)
    argv = ["--run", str(run_dir), "--data", str(data)]
    heat = evaluate_cli.main(argv)
    head = evaluate_cli.main([*argv, "--boxes", "head"])
    assert heat["boxes"] == "heatmap" and head["boxes"] == "head"
    # Same heatmaps (pointing is the heatmap's), different boxes: on these bars the
    # heatmap's blob is wider than a bar, the head follows the bar.
    defects = [i for i, r in enumerate(heat["images"]) if r["is_defect"]]
    assert [heat["images"][i]["pointing_hit"] for i in defects] == [
        head["images"][i]["pointing_hit"] for i in defects
    ]
    hits = [report["summary"]["all defects"]["box_hit@0.3"]["mean"] for report in (heat, head)]
    assert hits[1] >= 0.8 and hits[1] > hits[0], hits


def test_evaluate_without_a_box_head_says_how_to_train_one(classifier_on_masks, capsys):
    data, run_dir = classifier_on_masks
    bare = run_dir.parent / "bars_bare"
    bare.mkdir(exist_ok=True)
    for name in ("model.keras", "run.json"):
        (bare / name).write_bytes((run_dir / name).read_bytes())
    info = json.loads((bare / "run.json").read_text())
    info.pop("box_head", None)
    (bare / "run.json").write_text(json.dumps(info))
    code = evaluate_cli.main(["--run", str(bare), "--data", str(data), "--boxes", "head"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "has no box head" in err[0] and "python -m classification.boxhead" in err[0]


def test_the_cli_refuses_data_without_masks_in_one_line(classifier_on_masks, tmp_path, capsys):
    _, run_dir = classifier_on_masks
    write_unmasked_set(tmp_path, 48)
    code = boxhead.main(["--run", str(run_dir), "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(tmp_path) in err[0] and "defect mask" in err[0] and "docs/data.md" in err[0]
    with pytest.raises(SystemExit) as stopped:
        boxhead.main(["--run", str(run_dir), "--data", str(tmp_path), "--epochs", "0"])
    assert stopped.value.code == 2
    assert "--epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_boxes_come_from_the_head_when_the_run_has_one(classifier_on_masks, capsys):
    from classification import predict as predict_cli
    from classification.inference import predict_images

    data, run_dir = classifier_on_masks
    if not (run_dir / boxhead.HEAD_FILE).exists():
        train_box_head(str(run_dir), str(data), epochs=25, progress=False)
    images = sorted(str(p) for p in (data / "test" / "def_front").glob("*.png"))
    auto = predict_images(str(run_dir), images, boxes=True)
    heat = predict_images(str(run_dir), images, boxes=True, box_step="heatmap")
    assert auto.attrs["box_step"] == "head" and heat.attrs["box_step"] == "heatmap"
    assert list(auto["boxes"]) != list(heat["boxes"])
    bare = run_dir.parent / "bars_bare"  # made by the evaluate test above, or here
    if not (bare / "run.json").exists():
        bare.mkdir(exist_ok=True)
        (bare / "model.keras").write_bytes((run_dir / "model.keras").read_bytes())
        info = json.loads((run_dir / "run.json").read_text())
        info.pop("box_head")
        (bare / "run.json").write_text(json.dumps(info))
    out = run_dir.parent / "preds.csv"
    argv = ["--run", str(bare), "--images", *images, "--out", str(out), "--boxes"]
    assert predict_cli.main([*argv, "--box-step", "head"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no box head" in err[0] and "--box-step heatmap" in err[0]
    assert not out.exists()
    assert predict_cli.main(argv) == 0  # auto falls back to the heatmap's boxes
    assert "boxes from the heatmap (--box-step auto)" in capsys.readouterr().out

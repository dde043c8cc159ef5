"""python -m explain.evaluate on a tiny saved run and a tiny MVTec-like tree."""

import json

import cv2
import numpy as np
import pytest
from test_explain_cams import square_detector

from explain import evaluate as ev
from explain import evaluation
from store import create_run_dir, write_run_info

pytestmark = pytest.mark.xdist_group("explain_cams")
SIDE = 48  # originals are 48 px, the run's model sees 32 px


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def part_image(rng, square=None):
    img = rng.integers(0, 60, (SIDE, SIDE)).astype(np.uint8)
    if square is not None:
        x, y = square
        img[y : y + 9, x : x + 9] = 255
    return img


@pytest.fixture
def mvtec_tree(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mvtec"
    for i in range(2):
        write_png(root / "train" / "good" / f"{i:03d}.png", part_image(rng))
        write_png(root / "test" / "good" / f"{i:03d}.png", part_image(rng))
    for i, square in enumerate([(5, 6), (30, 8), (20, 33)]):
        write_png(root / "test" / "bright" / f"{i:03d}.png", part_image(rng, square))
        mask = np.zeros((SIDE, SIDE), np.uint8)
        mask[square[1] : square[1] + 9, square[0] : square[0] + 9] = 255
        write_png(root / "ground_truth" / "bright" / f"{i:03d}_mask.png", mask)
    return root


@pytest.fixture
def tiny_run():
    run_dir = create_run_dir("tiny-detector")
    square_detector().save(run_dir / "model.keras")
    write_run_info(
        run_dir,
        {
            "kind": "classifier",
            "model": "square_detector",
            "class_names": ["good", "bright"],
            "normal_class": "good",
            "defect_class": "bright",
            "preprocess": {"size": 32, "crop": 1.0, "clahe": False},
            "cam_layer": "detector",
        },
    )
    return run_dir.name


def test_evaluate_finds_planted_defects_and_reports_per_type(tiny_run, mvtec_tree):
    report = evaluation.evaluate(tiny_run, mvtec_tree)
    summary = report["summary"]
    assert set(summary) == {"bright", "all defects", "good"}
    assert summary["bright"]["pointing_hit"]["mean"] == 1.0
    assert summary["bright"]["box_hit@0.3"]["mean"] == 1.0
    assert summary["all defects"]["energy_inside"]["n"] == 3
    assert "pointing_hit" not in summary["good"] and summary["good"]["entropy"]["n"] == 2
    defects = [r for r in report["images"] if r["is_defect"]]
    assert all(r["explained_class"] == "bright" for r in defects)


def test_cli_prints_a_table_and_writes_per_image_json(tiny_run, mvtec_tree, tmp_path, capsys):
    out = tmp_path / "eval.json"
    ev.main(
        [
            "--run",
            tiny_run,
            "--data",
            str(mvtec_tree),
            "--method",
            "layercam",
            "--limit",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "all defects" in printed and "pointing_hit" in printed
    report = json.loads(out.read_text())
    assert report["method"] == "layercam" and report["layer"] == "detector"
    assert len(report["images"]) == 2  # one defective, one good


def test_unknown_split_names_the_available_ones(tiny_run, mvtec_tree):
    with pytest.raises(ValueError, match="train"):
        evaluation.evaluate(tiny_run, mvtec_tree, split="val")


def test_defect_class_prefers_the_images_own_type():
    info = {"class_names": ["good", "burr", "pinhole"], "defect_class": "burr"}
    assert evaluation.defect_class_index(info, "pinhole") == 2
    assert evaluation.defect_class_index(info, "scratch") == 1
    assert evaluation.defect_class_index({"class_names": ["a", "b"]}, "") == -1


def test_faithfulness_is_measured_on_the_sample_only_and_ranks_the_square(tiny_run, mvtec_tree):
    report = evaluation.evaluate(tiny_run, mvtec_tree, faithfulness=2)
    measured = [r for r in report["images"] if not np.isnan(r.get("road", np.nan))]
    assert report["faithfulness_images"] == 2 and len(measured) == 2
    assert all(r["is_defect"] for r in measured)
    # The square detector's Grad-CAM sits on the square: imputing the hottest pixels away
    # drops the defect probability far more than imputing the coldest (ROAD > 0).
    assert all(r["road"] > 0.1 for r in measured)
    assert all(
        0.0 <= r["deletion_auc"] <= 1.0 and 0.0 <= r["insertion_auc"] <= 1.0 for r in measured
    )
    assert report["summary"]["all defects"]["road"]["n"] == 2


def test_faithfulness_sample_is_the_same_whatever_the_order(mvtec_tree):
    from imaging import discover

    items = evaluation.select_items(discover(mvtec_tree).items, "test", None)
    shuffled = items.sample(frac=1.0, random_state=3)
    first = evaluation.faithfulness_sample(items, 2)
    assert first == evaluation.faithfulness_sample(shuffled, 2) and len(first) == 2
    assert evaluation.faithfulness_sample(items, 0) == set()
    assert len(evaluation.faithfulness_sample(items, 99)) == 3  # every defective image


def test_cli_refuses_a_negative_faithfulness_count(tiny_run, mvtec_tree, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ev.main(["--run", tiny_run, "--data", str(mvtec_tree), "--faithfulness", "-1"])
    assert exit_info.value.code == 2
    assert "--faithfulness" in capsys.readouterr().err

"""Pseudo-label export: boxes only on parts predicted defective, probability and heat apart."""

import json

import numpy as np
import pytest

from classification.decision_rule import (
    DecisionRuleError,
    defect_probability,
    predicted_defective,
    run_predicted_classes,
    run_predicted_defective,
)
from explain import ExplainError
from explain.boxes import Box
from explain.pseudolabels import ImageLabels, boxes_table, coco_json, select_for_export

CLASSES = ["def_front", "ok_front"]


def image(name: str, defect: bool, boxes=(), p=0.9) -> ImageLabels:
    return ImageLabels(
        name, 64, 48, "def_front", "def_front" if defect else "ok_front", p, defect, tuple(boxes)
    )


BOX = Box(2, 3, 12, 13, score=0.9, mean=0.6, area=80)


def test_decision_rule_is_argmax_against_the_normal_class():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    assert predicted_defective(probs, CLASSES, "ok_front").tolist() == [True, False, False]
    assert defect_probability(probs, CLASSES, "ok_front") == pytest.approx([0.7, 0.2, 0.4])
    # without a normal class: any class but the first above one half
    assert predicted_defective(probs, ["ok", "bad"], None).tolist() == [False, True, True]
    # at the run's operating point: defect probability >= its recorded threshold (0.5 without)
    info = {"class_names": CLASSES, "normal_class": "ok_front"}
    assert run_predicted_defective(probs, info).tolist() == [True, False, False]
    assert run_predicted_defective(probs, {**info, "threshold": 0.15}).tolist() == [
        True,
        True,
        True,
    ]
    assert run_predicted_classes(probs, {**info, "threshold": 0.3}) == [
        "def_front",
        "ok_front",
        "def_front",
    ]
    with pytest.raises(DecisionRuleError, match="3 classes"):
        predicted_defective(probs, ["a", "b", "c"], "a")


def test_predicted_good_parts_never_carry_boxes():
    records = [image("bad.png", True, [BOX]), image("good.png", False, [BOX], p=0.01)]
    kept = select_for_export(records)
    assert [r.file for r in kept] == ["bad.png"]
    with_negatives = select_for_export(records, include_negatives=True)
    assert [(r.file, len(r.boxes)) for r in with_negatives] == [("bad.png", 1), ("good.png", 0)]
    table = boxes_table(with_negatives)
    assert table["file"].tolist() == ["bad.png"]


def test_table_and_coco_keep_probability_and_heat_apart():
    records = select_for_export(
        [image("bad.png", True, [BOX], p=0.75), image("g.png", False)], True
    )
    row = boxes_table(records).iloc[0]
    assert "score" not in row.index
    assert row["defect_probability"] == pytest.approx(0.75)
    assert row["box_peak_heat"] == pytest.approx(0.9)
    assert row["box_mean_heat"] == pytest.approx(0.6)
    coco = json.loads(coco_json(records))
    assert [im["file_name"] for im in coco["images"]] == ["bad.png", "g.png"]
    assert len(coco["annotations"]) == 1 and coco["annotations"][0]["image_id"] == 1
    assert coco["annotations"][0]["bbox"] == [2, 3, 10, 10]
    assert coco["annotations"][0]["defect_probability"] == pytest.approx(0.75)


def test_coco_refuses_boxes_on_a_part_predicted_good():
    with pytest.raises(ExplainError, match="good.png"):
        coco_json([image("good.png", False, [BOX])])

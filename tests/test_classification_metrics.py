"""Classification metrics: defect is positive, confusion matrices name their labels."""

import numpy as np
import pytest

import store
from classification.metrics import binary_report, classification_report, format_report


def test_binary_report_counts_defect_as_positive():
    report = binary_report([1, 1, 0, 0, 1], [0.9, 0.2, 0.1, 0.7, 0.8])
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["confusion_matrix"] == {"labels": ["ok", "defect"], "matrix": [[1, 1], [1, 2]]}


def test_roc_auc_is_none_with_a_single_class():
    assert binary_report([1, 1], [0.4, 0.9])["roc_auc"] is None


def test_binary_classifier_report_names_the_defect_class():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = classification_report([0, 1, 1, 0], probs, ["ok_front", "def_front"], "ok_front")
    assert report["accuracy"] == 0.5
    assert report["positive_class"] == "def_front"
    assert report["per_class"]["def_front"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
    }
    assert report["confusion_matrix"]["matrix"] == [[1, 1], [1, 1]]
    assert report["roc_auc"] == pytest.approx(0.75)


def test_classifier_confusion_matrix_is_the_shared_run_record():
    # true ok, ok, def, def, def -> predicted ok, def, def, def, ok
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]])
    report = classification_report([0, 0, 1, 1, 1], probs, ["ok_front", "def_front"], "ok_front")
    expected = store.confusion_record([[1, 1], [1, 2]], ["ok_front", "def_front"], "def_front")
    assert report["confusion_matrix"] == expected


def test_multiclass_defect_f1_pools_the_defect_classes():
    names = ["good", "burr", "scratch"]
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7]])
    report = classification_report([0, 1, 2, 2], probs, names, "good")
    assert report["accuracy"] == 0.5
    assert report["defect_f1"] == 1.0  # every defect was called some defect
    assert report["positive_class"] == "any defect"
    assert len(report["confusion_matrix"]["matrix"]) == 3


def test_report_refuses_probabilities_of_the_wrong_width():
    with pytest.raises(ValueError, match="shape"):
        classification_report([0, 1], np.ones((2, 3)) / 3, ["ok", "bad"], "ok")


def test_summary_table_names_classes_and_positive_class():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    text = format_report(classification_report([0, 1], probs, ["ok", "def"], "ok"))
    assert "def positive" in text
    assert "confusion matrix" in text

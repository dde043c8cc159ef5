"""The reference's table with NG and OK positive, and threshold choice on validation scores."""

import numpy as np
import pytest

from meltingtank.thresholds import ThresholdError, choose_threshold, evaluate, pr_curve, table

Y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.1, 0.05])


def test_confusion_matrix_uses_the_reference_layout():
    # at 0.5 the predictions are NG NG OK | NG OK OK OK OK: rows true [NG, OK], columns predicted
    assert table(Y, P, 0.5)["confusion_matrix"] == {
        "labels": ["NG", "OK"],
        "matrix": [[2, 1], [1, 4]],
        "rows": "true class",
        "columns": "predicted class",
        "positive_class": "NG",
    }


def test_ng_and_ok_positive_scores():
    result = table(Y, P, 0.5)
    assert result["ng_positive"]["precision"] == pytest.approx(2 / 3)
    assert result["ng_positive"]["recall"] == pytest.approx(2 / 3)
    assert result["ok_positive"]["precision"] == pytest.approx(4 / 5)
    assert result["ok_positive"]["recall"] == pytest.approx(4 / 5)
    assert result["accuracy"] == pytest.approx(6 / 8)


def test_f1_threshold_maximises_ng_f1():
    threshold = choose_threshold(Y, P, "f1")
    best = max(table(Y, P, t)["ng_positive"]["f1"] for t in np.unique(P))
    assert table(Y, P, threshold)["ng_positive"]["f1"] == pytest.approx(best)


def test_recall_target_threshold_reaches_the_target():
    threshold = choose_threshold(Y, P, "recall:1.0")
    assert threshold == pytest.approx(0.3)
    assert table(Y, P, threshold)["ng_positive"]["recall"] == 1.0


@pytest.mark.parametrize("method", ["f2", "recall:", "recall:1.5"])
def test_unknown_threshold_method_is_refused(method):
    with pytest.raises(ThresholdError):
        choose_threshold(Y, P, method)


def test_pr_curve_is_thinned_for_plotting():
    rng = np.random.default_rng(0)
    y, p = rng.random(5000) < 0.1, rng.random(5000)
    curve = pr_curve(y, p, max_points=50)
    assert len(curve["precision"]) == len(curve["recall"]) == len(curve["threshold"]) <= 50


def test_evaluate_names_the_split_and_positive_class():
    result = evaluate(Y, P, 0.5, "f1", "test")
    assert (result["split"], result["positive_class"], result["labels"]) == (
        "test",
        "NG",
        ["NG", "OK"],
    )
    assert result["confusion_matrix"]["matrix"] == [[2, 1], [1, 4]]
    assert result["at_0_5"]["confusion_matrix"]["matrix"] == [[2, 1], [1, 4]]
    assert result["at_0_5"]["confusion_matrix"]["labels"] == ["NG", "OK"]
    # a higher threshold moves the 0.7 OK window and the 0.8 NG window to predicted OK
    assert evaluate(Y, P, 0.85, "f1", "test")["confusion_matrix"]["matrix"] == [[1, 2], [0, 5]]

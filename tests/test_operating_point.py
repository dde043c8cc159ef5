"""Threshold policies, the decision rule and the QA rates, on hand-made probability arrays.

Scores are dyadic fractions so every cut (a midpoint of two scores) is exact in floating point.
"""

import numpy as np
import pytest

from classification.metrics import classification_report
from classification.operating_point import (
    PolicyError,
    choose_threshold,
    curves,
    decide_classes,
    parse_policy,
    rates,
)
from store.thresholds import decide

# Distinct scores descending: .875 .75 .5 .375 .25 .125 -> cuts .8125 .625 .4375 .3125 .1875 .125
Y = np.array([0, 0, 1, 0, 1, 1])
S = np.array([0.125, 0.25, 0.375, 0.5, 0.75, 0.875])


def test_the_rule_flags_a_score_exactly_at_the_threshold():
    assert decide([0.49, 0.5, 0.51], 0.5).tolist() == [False, True, True]


def test_f1_policy_picks_the_cut_between_the_lowest_defect_and_the_good_part_below():
    choice = choose_threshold(Y, S, "f1")
    assert choice.threshold == 0.3125  # flags .375 and above: tp 3, fp 1 -> F1 6/7
    assert (choice.precision, choice.recall) == (0.75, 1.0)
    assert choice.f1 == pytest.approx(6 / 7)
    assert choice.policy == "f1"


def test_recall_policy_takes_the_highest_threshold_reaching_the_target():
    assert choose_threshold(Y, S, "recall:0.6").threshold == 0.625  # 2 of 3 defects, 0 alarms
    assert choose_threshold(Y, S, "recall:0.99").threshold == 0.3125
    assert choose_threshold(Y, S, "recall:1").recall == 1.0


def test_precision_policy_takes_the_lowest_threshold_meeting_the_target():
    assert choose_threshold(Y, S, "precision:0.9").threshold == 0.625
    assert choose_threshold(Y, S, "precision:0.7").threshold == 0.3125  # precision 3/4


def test_fixed_policy_keeps_its_value_and_reports_what_it_gives():
    choice = choose_threshold(Y, S, "fixed:0.5")
    assert choice.threshold == 0.5
    # the good part scored exactly 0.5 is flagged: the rule is score >= threshold
    assert (choice.precision, choice.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_f1_ties_go_to_the_higher_threshold():
    # flagging .875 alone and flagging all four both give F1 2/3; fewer alarms wins
    choice = choose_threshold([1, 0, 0, 1], [0.875, 0.625, 0.375, 0.125], "f1")
    assert choice.f1 == pytest.approx(2 / 3)
    assert choice.threshold == 0.75


def test_unreachable_precision_and_one_class_data_are_refused_by_name():
    with pytest.raises(PolicyError, match="precision:0.99"):
        choose_threshold([1, 0, 1], [0.25, 0.75, 0.5], "precision:0.99")  # top part is good
    with pytest.raises(PolicyError, match="both good and defective"):
        choose_threshold([1, 1], [0.25, 0.5], "f1")


@pytest.mark.parametrize(
    "bad", ["", "f2", "recall", "recall:x", "recall:0", "precision:1.5", "fixed:-1", "f1:0.5"]
)
def test_bad_policies_are_refused_with_usage(bad):
    with pytest.raises(PolicyError, match="recall:0.99"):
        parse_policy(bad)


def test_policies_round_trip_as_text():
    assert [str(parse_policy(t)) for t in ("F1", "recall:0.99", "fixed:0.5")] == [
        "f1",
        "recall:0.99",
        "fixed:0.5",
    ]


def test_rates_count_escapes_and_false_alarms_per_thousand_parts():
    r = rates(Y, S, 0.4375)  # flags .5 .75 .875: tp 2, fp 1, fn 1, tn 2
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 2)
    assert r["escape_per_1000"] == pytest.approx(1000 / 6)
    assert r["false_alarm_per_1000"] == pytest.approx(1000 / 6)
    assert r["recall"] == pytest.approx(2 / 3)


def test_multiclass_decides_defect_on_the_summed_probability_and_type_by_argmax():
    names = ["good", "scratch", "pit"]
    probs = np.array([[0.5, 0.25, 0.25], [0.75, 0.125, 0.125], [0.25, 0.25, 0.5]])
    # image 0: argmax says good, but 0.5 of defect mass reaches a 0.5 threshold -> a defect type
    assert decide_classes(probs, names, "good", 0.5).tolist() == [1, 0, 2]
    assert decide_classes(probs, names, "good", 0.8).tolist() == [0, 0, 0]


def test_report_keeps_operating_point_and_argmax_figures():
    probs = np.stack([1 - S, S], axis=1)
    report = classification_report(Y, probs, ["ok", "def"], "ok", threshold=0.3125)
    assert report["decision"] == "threshold"
    assert report["confusion_matrix"]["matrix"] == [[2, 1], [0, 3]]
    assert report["defect_recall"] == 1.0
    # argmax: a 0.5/0.5 tie goes to ok, and the defect at .375 escapes
    assert report["argmax"]["confusion_matrix"]["matrix"] == [[3, 0], [1, 2]]
    assert report["false_alarm_per_1000"] == pytest.approx(1000 / 6)


def test_curves_span_the_roc_and_pr_planes():
    c = curves(Y, S)
    assert c["fpr"][0] == 0.0 and c["fpr"][-1] == 1.0 and c["tpr"][-1] == 1.0
    assert len(c["precision"]) == len(c["recall"]) == len(c["pr_threshold"])
    assert curves([1, 1], [0.25, 0.5]) == {}

"""Triage order: ties at risk 1.000 are broken by the autoencoder's unbounded score."""

import numpy as np
import pandas as pd
import pytest

from inspection.risk import anomaly_ratio, risk_score, triage_order


def test_saturated_parts_are_ordered_by_anomaly_then_probability():
    items = pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4, 5],
            "risk_score": [1.0, 1.0, 1.0, 0.2, np.nan],
            "anomaly_score": [0.5, 3.0, np.nan, 0.1, 0.2],
            "defect_probability": [1.0, 1.0, 1.0, 0.2, np.nan],
        }
    )
    ranked = triage_order(items)
    assert ranked["item_id"].tolist() == [2, 1, 3, 4, 5]
    assert ranked["triage_rank"].tolist() == [1, 2, 3, 4, 5]


def test_equal_keys_keep_item_order_and_missing_columns_are_named():
    items = pd.DataFrame(
        {"item_id": [7, 3], "risk_score": [0.9, 0.9], "anomaly_score": [1, 1],
         "defect_probability": [0.9, 0.9]}
    )  # fmt: skip
    assert triage_order(items)["item_id"].tolist() == [3, 7]
    with pytest.raises(KeyError, match="anomaly_score"):
        triage_order(items.drop(columns="anomaly_score"))


def test_risk_is_half_at_the_threshold():
    assert risk_score(0.1, anomaly_ratio(2.0, 2.0)) == pytest.approx(0.5)


def test_a_defect_below_the_threshold_is_a_miss_not_reassurance():
    from inspection.risk import verdict_outcome

    miss = verdict_outcome(False, True)
    assert miss.good is False and "missed defect" in miss.suffix
    assert verdict_outcome(True, False).good is False
    assert verdict_outcome(True, True).good and verdict_outcome(False, False).good
    assert verdict_outcome(False, None).good is None

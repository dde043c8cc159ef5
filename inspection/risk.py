"""How two models' opinions become one number to sort a batch by, and when they disagree.

The classifier gives a defect probability p in [0, 1] (1 - probability of the normal class).
The autoencoder gives a score s with its run's threshold t (s >= t means anomalous). The ratio
r = s / t is turned into r / (1 + r), which is 0.5 exactly at the threshold, rises towards 1
for scores far above it and is 0 for a perfect reconstruction, so both opinions share one
scale on which 0.5 is the decision point. The risk is the larger of the two: a part either
model worries about comes first. Without an autoencoder (or a threshold) the risk is p.

A confident classifier puts every clear defect at p = 1.000, so the risk alone cannot order
them: `triage_order` breaks those ties by the autoencoder's unbounded score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


def anomaly_ratio(score: float | None, threshold: float | None) -> float | None:
    """Autoencoder score in units of its threshold (1.0 = on the threshold); None if unknown."""
    if score is None or threshold is None or math.isnan(score) or threshold <= 0:
        return None
    return max(float(score), 0.0) / float(threshold)


def risk_score(defect_probability: float | None, ratio: float | None) -> float | None:
    """max(p, r / (1 + r)): one scale for both models, 0.5 where either would flag the part."""
    parts = [] if defect_probability is None else [float(defect_probability)]
    if ratio is not None:
        parts.append(ratio / (1.0 + ratio))
    return max(parts) if parts else None


def disagreement(predicted_defect: bool | None, anomaly_flag: bool | None) -> bool:
    """True when the classifier and the autoencoder reach different verdicts on a part."""
    if predicted_defect is None or anomaly_flag is None:
        return False
    return bool(predicted_defect) != bool(anomaly_flag)


TRIAGE_KEYS = ("risk_score", "anomaly_score", "defect_probability")


def triage_order(items: pd.DataFrame) -> pd.DataFrame:
    """Items riskiest first, ties broken so the order still means something when both models
    are certain: risk (saturates at 1.0 for confident classifiers), then the autoencoder's
    raw score (unbounded, so it keeps ranking parts the classifier calls certain), then the
    defect probability, then item_id for a stable order. Missing values sort last.
    A `triage_rank` column (1 = look first) is added."""
    missing = [k for k in (*TRIAGE_KEYS, "item_id") if k not in items.columns]
    if missing:
        raise KeyError(f"triage_order needs the columns {missing}")
    keys = items[list(TRIAGE_KEYS)].apply(pd.to_numeric, errors="coerce")
    order = keys.assign(item_id=items["item_id"]).sort_values(
        [*TRIAGE_KEYS, "item_id"], ascending=[False, False, False, True], na_position="last"
    )
    ranked = items.loc[order.index].reset_index(drop=True)
    ranked.insert(0, "triage_rank", range(1, len(ranked) + 1))
    return ranked


@dataclass(frozen=True)
class Outcome:
    """A model's verdict against the known truth: right (True), wrong (False) or unknown."""

    good: bool | None
    suffix: str


def verdict_outcome(flagged: bool, truth_defect: bool | None) -> Outcome:
    """Words and rightness of a flag/pass against the truth, so a miss is never shown as
    reassuring: a defective part below the threshold is a missed defect, not "fine"."""
    if truth_defect is None:
        return Outcome(None, "")
    if flagged:
        return (
            Outcome(True, " · defect caught")
            if truth_defect
            else Outcome(False, " · false alarm (truth: good)")
        )
    return (
        Outcome(False, " · missed defect (truth: defect)")
        if truth_defect
        else Outcome(True, " · correctly passed")
    )

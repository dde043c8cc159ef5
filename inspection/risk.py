"""How two models' opinions become one number to sort a batch by, and when they disagree.

The classifier gives a defect probability p in [0, 1] (1 - probability of the normal class).
The autoencoder gives a score s with its run's threshold t (s >= t means anomalous). The ratio
r = s / t is turned into r / (1 + r), which is 0.5 exactly at the threshold, rises towards 1
for scores far above it and is 0 for a perfect reconstruction, so both opinions share one
scale on which 0.5 is the decision point. The risk is the larger of the two: a part either
model worries about comes first. Without an autoencoder (or a threshold) the risk is p.
"""

from __future__ import annotations

import math


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

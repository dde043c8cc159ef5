"""The baseline the LSTM must beat: a tabular model on per-window statistics.

Same windows, same split and same threshold rule as the LSTM; no SMOTE (the threshold absorbs
the imbalance). Only its metrics are kept: it is a yardstick, not a deployable run.
"""

from __future__ import annotations

import numpy as np

STATISTICS = ("mean", "std", "min", "max", "last", "slope")
KINDS = ("hgb", "logreg")


def window_statistics(x: np.ndarray) -> np.ndarray:
    """(N, window, F) -> (N, 6 * F): mean, std, min, max, last value and least-squares slope."""
    x = np.asarray(x, dtype=np.float32)
    t = np.arange(x.shape[1], dtype=np.float32)
    t -= t.mean()
    denom = float((t**2).sum()) or 1.0
    slope = np.einsum("nwf,w->nf", x, t) / denom
    parts = [x.mean(1), x.std(1), x.min(1), x.max(1), x[:, -1], slope]
    return np.concatenate(parts, axis=1)


def statistic_names(features: list[str]) -> list[str]:
    return [f"{f}_{s}" for s in STATISTICS for f in features]


def fit_baseline(kind: str, x: np.ndarray, y: np.ndarray, seed: int = 0):
    """Fit gradient boosting ('hgb') or logistic regression ('logreg') on window statistics."""
    stats = window_statistics(x)
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(max_iter=200, early_stopping=True, random_state=seed)
    elif kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")
        )
    else:
        raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(KINDS)} or none")
    return model.fit(stats, y)


def baseline_probabilities(model, x: np.ndarray) -> np.ndarray:
    """NG probability of each window."""
    return model.predict_proba(window_statistics(x))[:, 1]

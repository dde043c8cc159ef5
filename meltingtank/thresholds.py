"""Decision thresholds and the reference's quality table, with NG and with OK as positive class.

Confusion matrices use the reference notebook's layout: rows are the true class, columns the
predicted one, both in the order [NG, OK]; tables record them as store.confusion_record.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

import store
from store.thresholds import decide

log = logging.getLogger(__name__)

LABELS = ("NG", "OK")


class ThresholdError(ValueError):
    """A threshold method that is not 'f1' or 'recall:<target>'."""


def parse_method(method: str) -> tuple[str, float | None]:
    """'f1' or 'recall:0.95' -> (kind, target)."""
    text = method.strip().lower()
    if text == "f1":
        return "f1", None
    if text.startswith("recall:"):
        try:
            target = float(text.split(":", 1)[1])
        except ValueError:
            target = -1.0
        if 0 < target <= 1:
            return "recall", target
    raise ThresholdError(
        f"threshold method {method!r} not understood: use 'f1' (best NG F1) or "
        "'recall:0.95' (highest threshold reaching that NG recall)"
    )


def choose_threshold(y_ng: np.ndarray, prob: np.ndarray, method: str = "f1") -> float:
    """The NG-probability cut chosen on validation windows by `method`."""
    kind, target = parse_method(method)
    if y_ng.sum() == 0:
        log.warning("no NG among the validation windows: threshold left at 0.5")
        return 0.5
    precision, recall, cuts = precision_recall_curve(y_ng, prob)
    precision, recall = precision[:-1], recall[:-1]
    if kind == "f1":
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return float(cuts[int(np.argmax(f1))])
    reaching = np.flatnonzero(recall >= target)
    return float(cuts[reaching.max()]) if reaching.size else float(cuts[0])


def confusion(y_ng: np.ndarray, pred_ng: np.ndarray) -> list[list[int]]:
    """[[NG->NG, NG->OK], [OK->NG, OK->OK]] (rows true, columns predicted)."""
    y, p = np.asarray(y_ng, bool), np.asarray(pred_ng, bool)
    return [
        [int((y & p).sum()), int((y & ~p).sum())],
        [int((~y & p).sum()), int((~y & ~p).sum())],
    ]


def _scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def table(y_ng: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall and F1 with NG positive and with OK positive, accuracy, confusion."""
    cm = confusion(y_ng, decide(prob, threshold))
    (ng_ng, ng_ok), (ok_ng, ok_ok) = cm
    total = ng_ng + ng_ok + ok_ng + ok_ok
    return {
        "threshold": float(threshold),
        "ng_positive": _scores(ng_ng, ok_ng, ng_ok),
        "ok_positive": _scores(ok_ok, ng_ok, ok_ng),
        "accuracy": (ng_ng + ok_ok) / total if total else 0.0,
        "confusion_matrix": store.confusion_record(cm, LABELS, "NG"),
    }


def pr_curve(y_ng: np.ndarray, prob: np.ndarray, max_points: int = 200) -> dict[str, list]:
    """NG precision-recall curve thinned to at most `max_points` points for plotting."""
    if y_ng.sum() == 0:
        return {"precision": [], "recall": [], "threshold": []}
    precision, recall, cuts = precision_recall_curve(y_ng, prob)
    keep = np.unique(np.linspace(0, len(cuts) - 1, min(max_points, len(cuts))).astype(int))
    return {
        "precision": np.round(precision[keep], 5).tolist(),
        "recall": np.round(recall[keep], 5).tolist(),
        "threshold": np.round(cuts[keep], 6).tolist(),
    }


def evaluate(
    y_ng: np.ndarray, prob: np.ndarray, threshold: float, method: str, split: str
) -> dict[str, Any]:
    """Everything metrics.json records for one model on one split."""
    both = 0 < y_ng.sum() < len(y_ng)
    return {
        "split": split,
        "windows": int(len(y_ng)),
        "ng_windows": int(y_ng.sum()),
        "positive_class": "NG",
        "labels": list(LABELS),
        "threshold_method": method,
        **table(y_ng, prob, threshold),
        "at_0_5": table(y_ng, prob, 0.5),
        "average_precision": float(average_precision_score(y_ng, prob)) if both else None,
        "roc_auc": float(roc_auc_score(y_ng, prob)) if both else None,
        "pr_curve": pr_curve(y_ng, prob),
    }

"""Classification metrics as pure functions: the numbers in metrics.json and the summary table.

Defect is the positive class (docs/metrics.md). Every report names its positive class and the
label order of its confusion matrix (rows = true, columns = predicted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from classification.operating_point import decide_classes, defect_scores, rates
from store.runs import confusion_record
from store.thresholds import decide


def _roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """ROC-AUC, or None when only one class is present (it is undefined then)."""
    if len(np.unique(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, score))


def binary_report(
    y_true: Sequence[int] | np.ndarray,
    y_score: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
    positive: str = "defect",
    negative: str = "ok",
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC and confusion matrix with `positive` = 1."""
    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    y_pred = decide(y_score, threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=[1], average=None, zero_division=0
    )
    return {
        "positive_class": positive,
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision[0]),
        "recall": float(recall[0]),
        "f1": float(f1[0]),
        "roc_auc": _roc_auc(y_true, y_score),
        "support": {positive: int((y_true == 1).sum()), negative: int((y_true == 0).sum())},
        "confusion_matrix": {
            "labels": [negative, positive],
            "matrix": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
        },
    }


def _decision_figures(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], positive: str
) -> dict[str, Any]:
    """Accuracy, macro F1, per-class figures and confusion matrix of one set of decisions."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_record(
            confusion_matrix(y_true, y_pred, labels=labels), class_names, positive
        ),
    }


def _defect_figures(y_true: np.ndarray, y_pred: np.ndarray, normal_index: int) -> dict[str, float]:
    """Defect (any defect class) precision, recall and F1 of class decisions."""
    is_defect, flagged = y_true != normal_index, y_pred != normal_index
    precision, recall, f1, _ = precision_recall_fscore_support(
        is_defect, flagged, labels=[True], average=None, zero_division=0
    )
    return {
        "defect_f1": float(f1[0]),
        "defect_precision": float(precision[0]),
        "defect_recall": float(recall[0]),
    }


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    normal_class: str,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Test metrics of a softmax classifier over `class_names` (index order of the outputs).

    Decisions are taken at the operating point (`threshold` on the summed defect probability,
    the type by argmax among defect classes; see classification.operating_point); without a
    threshold, by argmax. The argmax figures are always kept under "argmax" for comparison.
    `defect_*`, the QA rates and `roc_auc` treat "any defect class" as positive.
    """
    y_true = np.asarray(y_true).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names):
        raise ValueError(
            f"probabilities must have shape (N, {len(class_names)}) for classes "
            f"{list(class_names)}, got {probabilities.shape}"
        )
    normal = list(class_names).index(normal_class)
    defect_classes = [c for c in class_names if c != normal_class]
    positive = defect_classes[0] if len(defect_classes) == 1 else "any defect"
    score = defect_scores(probabilities, class_names, normal_class)
    argmax_pred = probabilities.argmax(axis=1)
    y_pred = (
        argmax_pred
        if threshold is None
        else decide_classes(probabilities, class_names, normal_class, threshold)
    )
    at_point = _decision_figures(y_true, y_pred, class_names, positive)
    qa = rates(y_true != normal, y_pred != normal, 0.5)  # decisions are already taken
    argmax = _decision_figures(y_true, argmax_pred, class_names, positive)
    argmax_qa = rates(y_true != normal, argmax_pred != normal, 0.5)
    return {
        "n": int(len(y_true)),
        "decision": "argmax" if threshold is None else "threshold",
        "threshold": None if threshold is None else float(threshold),
        "accuracy": at_point["accuracy"],
        "macro_f1": at_point["macro_f1"],
        **_defect_figures(y_true, y_pred, normal),
        "escape_per_1000": qa["escape_per_1000"],
        "false_alarm_per_1000": qa["false_alarm_per_1000"],
        "roc_auc": _roc_auc(y_true != normal, score),
        "positive_class": positive,
        "normal_class": normal_class,
        "per_class": at_point["per_class"],
        "confusion_matrix": at_point["confusion_matrix"],
        "argmax": {
            "accuracy": argmax["accuracy"],
            "macro_f1": argmax["macro_f1"],
            **_defect_figures(y_true, argmax_pred, normal),
            "escape_per_1000": argmax_qa["escape_per_1000"],
            "false_alarm_per_1000": argmax_qa["false_alarm_per_1000"],
            "confusion_matrix": argmax["confusion_matrix"],
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text summary table of `classification_report` for the end of a CLI run."""
    names = list(report["per_class"])
    width = max(12, *(len(n) for n in names))
    auc = report["roc_auc"]
    lines = [
        f"test images: {report['n']}   accuracy: {report['accuracy']:.4f}   "
        f"macro F1: {report['macro_f1']:.4f}",
        f"defect F1 ({report['positive_class']} positive): {report['defect_f1']:.4f}   "
        f"ROC-AUC: {'n/a' if auc is None else f'{auc:.4f}'}",
    ]
    if report.get("threshold") is not None:
        argmax = report["argmax"]
        lines.append(
            f"decided at defect threshold {report['threshold']:.4f}: recall "
            f"{report['defect_recall']:.4f}, false alarms {report['false_alarm_per_1000']:.1f} "
            f"per 1,000 (argmax: accuracy {argmax['accuracy']:.4f}, recall "
            f"{argmax['defect_recall']:.4f}, false alarms "
            f"{argmax['false_alarm_per_1000']:.1f} per 1,000)"
        )
    lines += [
        "",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for name, row in report["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
            f"{row['f1']:5.4f}  {row['support']:7d}"
        )
    matrix = report["confusion_matrix"]["matrix"]
    cell = max(6, *(len(n) for n in names), *(len(str(v)) for r in matrix for v in r))
    lines += ["", "confusion matrix (rows = true, columns = predicted):"]
    lines.append(" " * width + "  " + " ".join(f"{n:>{cell}}" for n in names))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)

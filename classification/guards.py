"""Guard rails that flag a classifier run which only looks trained.

Two symptoms of a model that will fail in use although its training curve looks fine:
- collapse: in inference mode it answers (almost) one class for a validation set that holds
  several, either by its most probable class or at its operating point (the defect threshold
  the app and the service decide with: a weak model's best F1 is often "everything defective");
- mode gap: its inference-mode accuracy on the training images is far below the accuracy it
  reached on them in training mode (BatchNorm statistics or dropout behaving differently).
`check_classifier` measures both and returns plain values and warning sentences, which train.py
prints in its summary and stores in run.json through `store.health_record`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classification.operating_point import defect_scores
from store.thresholds import decide

# Collapse: the most predicted class takes at least this share of the predictions ...
COLLAPSE_SHARE = 0.95
# ... while it is at most this share of the true labels (a set that really is 95 % one class
# is not a collapse).
COLLAPSE_MAX_TRUE_SHARE = 0.8
# Mode gap: training-mode accuracy minus inference-mode accuracy on the training images.
MAX_MODE_GAP = 0.15


class GuardError(ValueError):
    """Inputs a guard cannot judge (empty, mismatched lengths, unknown class indices)."""


@dataclass
class Health:
    """What the guards measured and the warnings they raise (empty when the run looks sound)."""

    checks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.warnings


def _as_labels(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise GuardError(f"{name}: expected a non-empty 1-D array of class indices")
    return array.astype(np.int64)


def prediction_collapse(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> tuple[dict[str, Any], str | None]:
    """(check values, warning or None): do the predictions collapse to one class?"""
    truth, predicted = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if len(truth) != len(predicted):
        raise GuardError(f"{len(truth)} labels but {len(predicted)} predictions")
    k = len(class_names)
    if max(truth.max(), predicted.max()) >= k or min(truth.min(), predicted.min()) < 0:
        raise GuardError(f"class indices must lie in 0..{k - 1} for classes {list(class_names)}")
    counts = np.bincount(predicted, minlength=k)
    true_counts = np.bincount(truth, minlength=k)
    top = int(counts.argmax())
    share = counts[top] / len(predicted)
    true_share = true_counts[top] / len(truth)
    collapsed = bool(share >= COLLAPSE_SHARE and true_share <= COLLAPSE_MAX_TRUE_SHARE)
    checks = {
        "predicted_counts": {str(c): int(n) for c, n in zip(class_names, counts, strict=True)},
        "true_counts": {str(c): int(n) for c, n in zip(class_names, true_counts, strict=True)},
        "collapsed": collapsed,
    }
    warning = None
    if collapsed:
        warning = (
            f"predictions collapse to one class: {share:.0%} of {len(predicted)} validation "
            f"images predicted {class_names[top]!r}, which is {true_share:.0%} of their labels"
        )
    return checks, warning


def operating_point_collapse(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    normal: str,
    threshold: float,
) -> tuple[dict[str, Any], str | None]:
    """(check values, warning or None): does the run's defect threshold call (almost) every
    validation image the same, good or defective, while the labels hold both?"""
    truth = _as_labels(y_true, "y_true")
    if normal not in class_names:
        raise GuardError(f"normal class {normal!r} is not one of {list(class_names)}")
    called = decide(defect_scores(probabilities, class_names, normal), threshold).astype(np.int64)
    checks, _ = prediction_collapse(
        (truth != list(class_names).index(normal)).astype(np.int64), called, ["good", "defective"]
    )
    checks = {"threshold": round(float(threshold), 6), **checks}
    if not checks["collapsed"]:
        return checks, None
    counts = checks["predicted_counts"]
    side = max(counts, key=counts.get)
    share, true_share = counts[side] / len(truth), checks["true_counts"][side] / len(truth)
    return checks, (
        f"at its operating point (defect threshold {threshold:.3g}) the run calls {share:.0%} of "
        f"{len(truth)} validation images {side}, which is {true_share:.0%} of their labels: it "
        "does not separate good from defective parts; train on more parts, add defect masks "
        "(--masks) or start from a run on similar parts (--init-from RUN, docs/small-data.md)"
    )


def mode_gap(
    inference_accuracy: float, training_mode_accuracy: float | None
) -> tuple[dict[str, Any], str | None]:
    """(check values, warning or None): inference-mode vs training-mode accuracy on train data."""
    checks: dict[str, Any] = {"train_accuracy_inference": round(float(inference_accuracy), 4)}
    if training_mode_accuracy is None or not np.isfinite(training_mode_accuracy):
        return checks, None
    gap = float(training_mode_accuracy) - float(inference_accuracy)
    checks["train_accuracy_training_mode"] = round(float(training_mode_accuracy), 4)
    checks["mode_gap"] = round(gap, 4)
    if gap <= MAX_MODE_GAP:
        return checks, None
    return checks, (
        f"inference-mode accuracy on the training images is {inference_accuracy:.2f}, far "
        f"below the {training_mode_accuracy:.2f} reached in training mode: the saved model "
        "does not behave as it did while training"
    )


def check_classifier(
    val_true: Sequence[int] | np.ndarray,
    val_probabilities: np.ndarray,
    train_true: Sequence[int] | np.ndarray,
    train_probabilities: np.ndarray,
    class_names: Sequence[str],
    training_mode_accuracy: float | None,
    *,
    normal: str | None = None,
    threshold: float | None = None,
) -> Health:
    """Run the guards on inference-mode probabilities of the validation and training images;
    with `normal` and `threshold` (the run's operating point) also the operating-point collapse."""
    health = Health()
    collapse, warning = prediction_collapse(
        val_true, np.asarray(val_probabilities).argmax(axis=1), class_names
    )
    health.checks["validation"] = collapse
    if warning:
        health.warnings.append(warning)
    if normal is not None and threshold is not None:
        at_threshold, warning = operating_point_collapse(
            val_true, val_probabilities, class_names, normal, threshold
        )
        health.checks["operating_point"] = at_threshold
        if warning:
            health.warnings.append(warning)
    train_true = _as_labels(train_true, "train_true")
    accuracy = float(np.mean(np.asarray(train_probabilities).argmax(axis=1) == train_true))
    gap, warning = mode_gap(accuracy, training_mode_accuracy)
    health.checks.update(gap)
    if warning:
        health.warnings.append(warning)
    return health


def _training_mode_accuracy(history: dict[str, list], epoch: int | None) -> float | None:
    """Training accuracy Keras logged (training mode) for the epoch whose weights were kept."""
    values = history.get("accuracy") or []
    if not values:
        return None
    index = (epoch - 1) if epoch and 0 < epoch <= len(values) else len(values) - 1
    return float(values[index])


def assess_classifier(
    model: Any,
    val_data: Any,
    val_true: np.ndarray,
    train_data: Any,
    train_true: np.ndarray,
    class_names: Sequence[str],
    history: dict[str, list],
    kept_epoch: int | None,
    *,
    normal: str | None = None,
    threshold: float | None = None,
) -> Health:
    """`check_classifier` on a trained model: inference-mode predictions of both data sets.

    `val_data` and `train_data` yield unaugmented batches in the order of the labels given;
    `history` is Keras' History.history and `kept_epoch` the (1-based) epoch whose weights the
    model holds, whose logged training accuracy is the training-mode reference. `normal` and
    `threshold`: the run's good class and defect threshold, to check its operating point too.
    """
    return check_classifier(
        val_true,
        model.predict(val_data, verbose=0),
        train_true,
        model.predict(train_data, verbose=0),
        class_names,
        _training_mode_accuracy(history, kept_epoch),
        normal=normal,
        threshold=threshold,
    )

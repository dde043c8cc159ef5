"""Operating points of a defect classifier: threshold policies, decisions, QA rates, curves.

A classifier's defect score is the summed probability of its defect classes (1 - p_normal); a
part is defective when that score is at or above the run's threshold (store.thresholds.decide)
and its type is then the most probable defect class. Policies choose the threshold on
validation data only:

- `f1`: best defect F1;
- `recall:X`: the highest threshold whose recall reaches X (fewest false alarms at that recall);
- `precision:X`: the lowest threshold whose precision reaches X (most recall at that precision);
- `fixed:X`: X itself.

Chosen cuts sit halfway between the lowest score flagged and the highest score passed, so a
score a hair below a validation defect's is still flagged the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from store.thresholds import decide

POLICY_KINDS = ("f1", "recall", "precision", "fixed")
DEFAULT_POLICY = "f1"
PER = 1000  # QA rates are per 1,000 parts


class PolicyError(ValueError):
    """A threshold policy that cannot be parsed or cannot be met on the data given."""


@dataclass(frozen=True)
class Policy:
    kind: str
    target: float | None = None

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target:g}"


def parse_policy(text: str) -> Policy:
    """'f1', 'recall:0.99', 'precision:0.95' or 'fixed:0.5' -> Policy."""
    raw = str(text).strip().lower()
    kind, _, value = raw.partition(":")
    usage = (
        f"threshold policy {text!r} not understood: use f1, recall:0.99, precision:0.95 or "
        "fixed:0.5 (targets between 0 and 1)"
    )
    if kind == "f1" and not value:
        return Policy("f1")
    if kind not in POLICY_KINDS[1:] or not value:
        raise PolicyError(usage)
    try:
        target = float(value)
    except ValueError:
        raise PolicyError(usage) from None
    if not 0.0 <= target <= 1.0 or (kind != "fixed" and target == 0.0):
        raise PolicyError(usage)
    return Policy(kind, target)


@dataclass(frozen=True)
class Choice:
    """A threshold a policy chose, with the figures it gave on the data it was chosen on."""

    threshold: float
    policy: str
    precision: float
    recall: float
    f1: float


def _as_arrays(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise PolicyError(f"{len(y)} labels but {len(s)} scores: they must pair up")
    if not np.all(np.isfinite(s)):
        raise PolicyError("scores contain NaN or infinite values")
    return y, s


def _cuts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate cuts (descending) with true and false positives when flagging score >= cut."""
    values = np.unique(s)[::-1]
    below = np.append(values[1:], values[-1])
    cuts = (values + below) / 2.0  # the last cut is the lowest score itself: flag everything
    tp = np.array([np.sum(y & (s >= v)) for v in values])
    fp = np.array([np.sum(~y & (s >= v)) for v in values])
    return cuts, tp, fp


def choose_threshold(y_true: Any, score: Any, policy: str | Policy = DEFAULT_POLICY) -> Choice:
    """The threshold `policy` picks on (validation) labels and defect scores."""
    policy = policy if isinstance(policy, Policy) else parse_policy(policy)
    y, s = _as_arrays(y_true, score)
    if policy.kind == "fixed":
        stats = rates(y, s, policy.target) if len(y) else None
        return Choice(
            float(policy.target),
            str(policy),
            stats["precision"] if stats else float("nan"),
            stats["recall"] if stats else float("nan"),
            stats["f1"] if stats else float("nan"),
        )
    if y.all() or not y.any():
        raise PolicyError(
            f"policy {policy} needs both good and defective images in the validation data "
            f"(got {int(y.sum())} defective of {len(y)}); use fixed:X"
        )
    cuts, tp, fp = _cuts(y, s)
    positives = int(y.sum())
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / positives
    f1 = 2 * tp / (tp + fp + positives)
    if policy.kind == "f1":
        best = int(np.argmax(f1))  # first maximum: the highest cut, fewest false alarms
    elif policy.kind == "recall":
        best = int(np.flatnonzero(recall >= policy.target)[0])
    else:
        meeting = np.flatnonzero(precision >= policy.target)
        if not meeting.size:
            raise PolicyError(
                f"policy {policy}: no threshold reaches precision {policy.target:g} on the "
                f"validation data (best {precision.max():.3f}); lower the target"
            )
        best = int(meeting[-1])
    return Choice(
        float(cuts[best]),
        str(policy),
        float(precision[best]),
        float(recall[best]),
        float(f1[best]),
    )


def defect_scores(probabilities: np.ndarray, class_names: Sequence[str], normal: str) -> np.ndarray:
    """Summed probability of the defect classes per image (1 - p_normal)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return 1.0 - p[:, list(class_names).index(normal)]


def decide_classes(
    probabilities: np.ndarray, class_names: Sequence[str], normal: str, threshold: float
) -> np.ndarray:
    """Predicted class index per image: normal below the threshold, else the likeliest defect."""
    p = np.asarray(probabilities, dtype=np.float64)
    normal_index = list(class_names).index(normal)
    defect_only = p.copy()
    defect_only[:, normal_index] = -np.inf
    flagged = decide(defect_scores(p, class_names, normal), threshold)
    return np.where(flagged, defect_only.argmax(axis=1), normal_index)


def rates(y_true: Any, score: Any, threshold: float) -> dict[str, Any]:
    """Confusion counts, precision, recall, F1, escape and false-alarm rates per 1,000 parts."""
    y, s = _as_arrays(y_true, score)
    flagged = decide(s, threshold)
    tp, fp = int(np.sum(y & flagged)), int(np.sum(~y & flagged))
    fn, tn = int(np.sum(y & ~flagged)), int(np.sum(~y & ~flagged))
    n = len(y)
    return {
        "threshold": float(threshold),
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "accuracy": (tp + tn) / n if n else 0.0,
        "escape_per_1000": PER * fn / n if n else 0.0,
        "false_alarm_per_1000": PER * fp / n if n else 0.0,
    }


def curves(y_true: Any, score: Any) -> dict[str, list[float]]:
    """ROC (fpr, tpr) and precision-recall points with the thresholds that produce them."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, s = _as_arrays(y_true, score)
    if y.all() or not y.any():
        return {}
    fpr, tpr, roc_cut = roc_curve(y, s)
    precision, recall, pr_cut = precision_recall_curve(y, s)
    return {
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "roc_threshold": np.minimum(roc_cut, 1.0).tolist(),
        "precision": precision[:-1].tolist(),
        "recall": recall[:-1].tolist(),
        "pr_threshold": pr_cut.tolist(),
    }

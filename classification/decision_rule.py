"""The run's decision rule: is a part defective? One place for the pages to ask.

`run_predicted_defective` applies the run's operating point (store.thresholds: the recorded
threshold, 0.5 without one) to the defect probability, a probability at or above it being
defective. `predicted_defective` without a threshold is the plain argmax rule (the most
probable class is not the normal class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from store.thresholds import decide, run_threshold


class DecisionRuleError(ValueError):
    """Probabilities that do not fit the run's classes."""


def defect_probability(probabilities: np.ndarray, class_names: Sequence[str], normal: str | None):
    """1 - P(normal class) per image (N,); without a normal class, the largest probability
    of any class but the first."""
    p = _check(probabilities, class_names)
    if normal is not None and normal in class_names:
        return 1.0 - p[:, list(class_names).index(normal)]
    return p[:, 1:].max(axis=1) if p.shape[1] > 1 else p[:, 0]


def predicted_defective(
    probabilities: np.ndarray, class_names: Sequence[str], normal: str | None
) -> np.ndarray:
    """Boolean (N,): True where the run's rule calls the part defective (argmax is not the
    normal class; without a normal class, defect probability > 0.5)."""
    p = _check(probabilities, class_names)
    if normal is not None and normal in class_names:
        return p.argmax(axis=1) != list(class_names).index(normal)
    return defect_probability(p, class_names, normal) > 0.5


def run_predicted_defective(probabilities: np.ndarray, info: dict) -> np.ndarray:
    """Boolean (N,) at the run's operating point: defect probability >= its threshold."""
    names = list(info.get("class_names") or [])
    p_defect = defect_probability(probabilities, names, info.get("normal_class"))
    return decide(p_defect, run_threshold(info))


def run_predicted_classes(probabilities: np.ndarray, info: dict) -> list[str]:
    """The class per image at the run's operating point: the normal class below the threshold,
    else the likeliest defect class (argmax for runs without a normal class)."""
    names = list(info.get("class_names") or [])
    p = _check(probabilities, names)
    normal = info.get("normal_class")
    if normal is None or normal not in names:
        return [names[i] for i in p.argmax(axis=1)]
    defect_only = p.copy()
    defect_only[:, names.index(normal)] = -np.inf
    flagged = run_predicted_defective(p, info)
    return [
        names[int(d.argmax())] if f else normal for d, f in zip(defect_only, flagged, strict=True)
    ]


def _check(probabilities: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != len(class_names):
        raise DecisionRuleError(
            f"probabilities shaped {np.shape(probabilities)} do not match the run's "
            f"{len(class_names)} classes {list(class_names)}"
        )
    return p

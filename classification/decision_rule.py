"""The run's decision rule: is a part defective? One function, so an operating-point threshold
can replace the argmax rule in one place.

Today's rule: the part is defective when the most probable class is not the normal class
(for a run without a normal class: defect probability above one half).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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

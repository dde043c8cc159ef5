"""How sure are we that one recipe's heatmaps beat another's? Intervals and paired tests.

A heatmap metric of one recipe is a table of values, one row per training seed and one column
per test image (NaN where the metric is undefined, e.g. box IoU on a good part). Intervals
resample both (seeds and images, with replacement) because both vary when a user retrains; two
recipes are compared on the same images (a paired test on the per-image means over seeds), and
p-values over several pairs are Holm-corrected.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from explain.layers import ExplainError

ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _table(values) -> np.ndarray:
    table = np.asarray(values, dtype=np.float64)
    if table.ndim == 1:
        table = table[None, :]
    if table.ndim != 2 or table.size == 0:
        raise ExplainError(f"expected a (seeds, images) table of values, got shape {table.shape}")
    if np.all(np.isnan(table)):
        raise ExplainError("every value is NaN: the metric is undefined on these images")
    return table


def bootstrap_interval(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Mean and percentile interval, resampling seeds (rows) and images (columns)."""
    if not 0.0 < level < 1.0:
        raise ExplainError(f"level must lie in (0, 1), got {level}")
    table = _table(values)
    rng = np.random.default_rng(seed)
    n_seeds, n_images = table.shape
    rows = rng.integers(0, n_seeds, (n_boot, n_seeds))
    cols = rng.integers(0, n_images, (n_boot, n_images))
    means = np.empty(n_boot)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw of only NaNs gives NaN
        for b in range(n_boot):
            means[b] = np.nanmean(table[np.ix_(rows[b], cols[b])])
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(means, [tail, 100.0 - tail])
    return Interval(float(np.nanmean(table)), float(low), float(high), level)


@dataclass(frozen=True)
class Difference:
    """Recipe a minus recipe b on the same images: interval, Wilcoxon p-value, verdict."""

    a: str
    b: str
    interval: Interval
    p_value: float
    n_images: int
    significant: bool = False

    def sentence(self, metric: str, higher_is_better: bool = True) -> str:
        if not self.significant:
            return (
                f"{self.a} vs {self.b}: no significant difference in {metric} "
                f"({self.interval}, p = {self.p_value:.3g}, {self.n_images} images)"
            )
        better = self.a if (self.interval.mean > 0) == higher_is_better else self.b
        return (
            f"{better} is better in {metric}: {self.a} - {self.b} = {self.interval} "
            f"(p = {self.p_value:.3g} after Holm correction, {self.n_images} images)"
        )


def paired_difference(
    a_values, b_values, a: str = "a", b: str = "b", n_boot: int = 2000, seed: int = 0
) -> Difference:
    """Per-image means over seeds, then a bootstrap interval and a Wilcoxon signed-rank test."""
    ta, tb = _table(a_values), _table(b_values)
    if ta.shape[1] != tb.shape[1]:
        raise ExplainError(
            f"{a} has {ta.shape[1]} images and {b} {tb.shape[1]}: a paired comparison needs "
            "the same images in the same order"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # images a metric skips: all-NaN columns
        diff = np.nanmean(ta, axis=0) - np.nanmean(tb, axis=0)
    diff = diff[np.isfinite(diff)]
    if diff.size < 2:
        raise ExplainError(f"{a} vs {b}: fewer than 2 images where both metrics are defined")
    interval = bootstrap_interval(diff, n_boot=n_boot, seed=seed)
    p = 1.0 if np.allclose(diff, 0.0) else float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)
    return Difference(a, b, interval, p, int(diff.size))


def holm(p_values: list[float], alpha: float = ALPHA) -> list[tuple[float, bool]]:
    """Holm-Bonferroni: (adjusted p-value, rejected) per input p-value, in input order."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return [(float(p), bool(p < alpha)) for p in adjusted]


def compare_recipes(
    tables: dict[str, np.ndarray], alpha: float = ALPHA, n_boot: int = 2000
) -> list[Difference]:
    """Every pair of recipes, Holm-corrected over the pairs; significant = adjusted p < alpha."""
    pairs = [
        paired_difference(tables[a], tables[b], a, b, n_boot=n_boot)
        for a, b in combinations(sorted(tables), 2)
    ]
    corrected = holm([d.p_value for d in pairs], alpha)
    return [
        Difference(d.a, d.b, d.interval, p, d.n_images, significant)
        for d, (p, significant) in zip(pairs, corrected, strict=True)
    ]

"""Patch-feature detectors: PatchCore's memory bank and PaDiM's per-position Gaussians.

Both take patch features shaped (N, h, w, D) (from `anomaly.features`) of good parts and
return patch-level anomaly maps (N, h, w) for new parts:

- PatchCore (Roth et al., CVPR 2022): every good patch feature goes into a memory bank,
  thinned by greedy k-centre coreset selection (the next kept feature is always the one farthest
  from those already kept, so the bank still covers every kind of good patch); a patch's score
  is the distance to its nearest neighbour in the bank (exact, one BLAS product per chunk).
  Position-free: a rotated part is as normal as an upright one.
- PaDiM (Defard et al., ICPR 2021): one Gaussian per patch position; a patch's score is its
  Mahalanobis distance to that position's Gaussian. Cheap, but it assumes parts sit in the same
  pose every time.
"""

from __future__ import annotations

import numpy as np

METHODS = ("patchcore", "padim")


class MemoryBankError(ValueError):
    """Features or settings a memory-bank detector cannot use."""


def _patches(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 4:
        raise MemoryBankError(f"patch features must be (N, h, w, D), got shape {f.shape}")
    return f.reshape(-1, f.shape[-1])


def greedy_coreset(
    x: np.ndarray, n: int, projection_dim: int | None = 128, seed: int = 0
) -> np.ndarray:
    """Indices of `n` rows of `x` chosen by greedy k-centre selection (PatchCore's coreset).

    Starts from a random row, then repeatedly adds the row farthest from everything chosen so
    far. Distances are computed after a random Gaussian projection to `projection_dim`
    dimensions (Johnson-Lindenstrauss, as in PatchCore) when that is smaller than the data's.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise MemoryBankError(f"coreset selection needs a non-empty (M, D) array, got {x.shape}")
    if n < 1:
        raise MemoryBankError(f"coreset size must be at least 1, got {n}")
    if n >= len(x):
        return np.arange(len(x))
    rng = np.random.default_rng(seed)
    if projection_dim is not None and projection_dim < x.shape[1]:
        proj = rng.normal(size=(x.shape[1], projection_dim)).astype(np.float32)
        x = x @ (proj / np.sqrt(projection_dim))
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = int(rng.integers(len(x)))
    # squared distance of every row to its nearest chosen row
    nearest = sq - 2.0 * (x @ x[chosen[0]]) + sq[chosen[0]]
    for k in range(1, n):
        i = int(np.argmax(nearest))
        chosen[k] = i
        np.minimum(nearest, sq - 2.0 * (x @ x[i]) + sq[i], out=nearest)
    return chosen


def nearest_distances(queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance of each query row to its nearest bank row: exact brute force, the
    nearest row found by one BLAS matrix product per chunk of queries (|b|^2 - 2 q.b), its
    distance then computed directly.

    Measured on 12,800 queries x 1,000 bank rows x 64 dimensions (one chunk of 32 parts): 77 ms
    CPU against 139 ms for scikit-learn's brute-force `kneighbors`, same distances within 1e-5;
    on a few thousand bank rows no tree or approximate index beats it.
    """
    q = np.asarray(queries, dtype=np.float32)
    b = np.asarray(bank, dtype=np.float32)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1] or len(b) == 0:
        raise MemoryBankError(f"queries {q.shape} and bank {b.shape} must be (N, D) and (M, D)")
    out = np.empty(len(q), np.float32)
    bank_norms = np.einsum("ij,ij->i", b, b)
    for start in range(0, len(q), chunk):
        part = q[start : start + chunk]
        d2 = part @ b.T
        d2 *= -2.0
        d2 += bank_norms
        # the product finds the nearest row; its distance is then taken directly, so small
        # distances do not suffer the cancellation of the expanded form
        diff = part - b[d2.argmin(axis=1)]
        out[start : start + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def fit_patchcore(features: np.ndarray, coreset: int | float, seed: int = 0) -> np.ndarray:
    """The memory bank (M, D) of good patch features: `coreset` rows if an int, else that
    fraction of all patches."""
    patches = _patches(features)
    n = int(coreset) if float(coreset) >= 1 else max(1, int(round(len(patches) * coreset)))
    return patches[greedy_coreset(patches, n, seed=seed)]


def score_patchcore(features: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Patch anomaly maps (N, h, w): distance to the nearest memory-bank feature."""
    f = np.asarray(features, dtype=np.float32)
    return nearest_distances(_patches(f), bank).reshape(f.shape[:3])


def fit_padim(features: np.ndarray, eps: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(mean (h, w, D), inverse covariance (h, w, D, D)) per patch position; `eps` * identity
    regularises each covariance as in the paper."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 4 or len(f) < 2:
        raise MemoryBankError(f"PaDiM needs at least 2 feature maps (N, h, w, D), got {f.shape}")
    mean = f.mean(axis=0)
    centred = f - mean
    cov = np.einsum("nhwi,nhwj->hwij", centred, centred) / (len(f) - 1)
    cov += eps * np.eye(f.shape[-1])
    return mean.astype(np.float32), np.linalg.inv(cov).astype(np.float32)


def score_padim(features: np.ndarray, mean: np.ndarray, inv_cov: np.ndarray) -> np.ndarray:
    """Patch anomaly maps (N, h, w): Mahalanobis distance to each position's Gaussian."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 4 or f.shape[1:] != mean.shape:
        raise MemoryBankError(f"features {f.shape} do not match the PaDiM statistics {mean.shape}")
    d = f - mean
    m2 = np.einsum("nhwi,hwij,nhwj->nhw", d, inv_cov, d, optimize=True)
    return np.sqrt(np.maximum(m2, 0.0)).astype(np.float32)

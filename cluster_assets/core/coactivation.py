"""Exact co-firing counts between features.

``coactivation(activity)[a, b]`` is the number of samples on which features ``a`` and
``b`` are both active; the diagonal holds each feature's firing count.  Counts are
integers end to end (no float product), computed by a numba kernel that walks, for
each feature ``a``, the samples where it fires and the features ``b > a`` active there.
Each output row is written by one thread only, so rows parallelise without locks.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp


def as_activity_csr(activity: sp.sparray | sp.spmatrix | np.ndarray) -> sp.csr_array:
    """Validate a samples x features activity matrix; return boolean CSR with sorted indices."""
    if not (sp.issparse(activity) or isinstance(activity, np.ndarray)):
        raise TypeError(f"activity must be a scipy sparse matrix, got {type(activity).__name__}")
    if activity.ndim != 2:
        raise ValueError(f"activity must be 2-D (samples x features), got shape {activity.shape}")
    csr = sp.csr_array(activity)
    if csr.dtype != bool:
        data = csr.data
        if data.size and not np.all(np.isfinite(data)):
            raise ValueError("activity contains NaN or inf")
        csr = sp.csr_array(csr != 0)
    csr.sum_duplicates()
    csr.sort_indices()
    csr.indptr = csr.indptr.astype(np.int64)
    csr.indices = csr.indices.astype(np.int32)
    return csr


def count_dtype(n_samples: int) -> np.dtype:
    """Smallest safe integer type for counts of at most ``n_samples``."""
    return np.dtype(np.int32) if n_samples < 2**31 else np.dtype(np.int64)


@nb.njit(parallel=True, cache=True)
def _upper_counts(row_indptr, row_indices, col_indptr, col_indices, out):
    n_features = out.shape[0]
    for a in nb.prange(n_features):
        out[a, a] = col_indptr[a + 1] - col_indptr[a]
        for p in range(col_indptr[a], col_indptr[a + 1]):
            t = col_indices[p]
            lo, hi = row_indptr[t], row_indptr[t + 1]
            # row indices are sorted: features > a start right after a's own position
            start = lo + np.searchsorted(row_indices[lo:hi], a, side="right")
            for q in range(start, hi):
                out[a, row_indices[q]] += 1


@nb.njit(parallel=True, cache=True)
def _mirror_upper(out):
    n = out.shape[0]
    for b in nb.prange(n):
        for a in range(b):
            out[b, a] = out[a, b]


def coactivation(activity: sp.sparray | sp.spmatrix) -> np.ndarray:
    """Exact co-firing counts: integer (features x features), symmetric, diagonal = counts.

    ``activity`` is a scipy sparse samples x features matrix (bool or uint8; any non-zero
    counts as active).  The result is int32 when there are fewer than 2**31 samples,
    int64 otherwise.
    """
    csr = as_activity_csr(activity)
    n_samples, n_features = csr.shape
    csc = csr.tocsc()
    csc.sort_indices()
    out = np.zeros((n_features, n_features), dtype=count_dtype(n_samples))
    if n_features == 0:
        return out
    _upper_counts(csr.indptr, csr.indices, csc.indptr.astype(np.int64), csc.indices.astype(np.int64), out)
    _mirror_upper(out)
    return out

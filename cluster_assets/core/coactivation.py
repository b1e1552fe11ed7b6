"""Exact co-firing counts between features.

``coactivation(activity)[a, b]`` is the number of samples on which features ``a`` and
``b`` are both active; the diagonal holds each feature's firing count.  Counts are
integers end to end (no float product), computed by a numba kernel that walks, for
each feature ``a``, the samples where it fires and the features ``b > a`` active there
(starting from ``a``'s own entry in the sample's sorted row, found through a position
map built with the transpose).  Each output row is written by one thread only, so
rows parallelise without locks, and the row being written stays in cache.
"""

from __future__ import annotations

from typing import cast

import numba as nb
import numpy as np
import scipy.sparse as sp

from cluster_assets.core.arrays import Int32Array, Int64Array, IntArray
from cluster_assets.core.params import SparseMatrix


def as_activity_csr(activity: SparseMatrix) -> sp.csr_array:
    """Validate a samples x features activity matrix; return boolean CSR with sorted indices."""
    if not (sp.issparse(activity) or isinstance(activity, np.ndarray)):
        raise TypeError(f"activity must be a scipy sparse matrix, got {type(activity).__name__}")
    activity = cast(SparseMatrix, activity)  # not the narrowed sparse base class, which scipy's constructors do not take
    shape = tuple(activity.shape)
    if len(shape) != 2:
        raise ValueError(f"activity must be 2-D (samples x features), got shape {shape}")
    csr = sp.csr_array(activity)
    if csr.dtype != bool:
        data = csr.data
        if data.size and not np.all(np.isfinite(data)):
            raise ValueError("activity contains NaN or inf")
        csr = sp.csr_array((data != 0, csr.indices, csr.indptr), shape=csr.shape)
        csr.eliminate_zeros()
    csr.sum_duplicates()
    csr.sort_indices()
    # set the index arrays directly: a constructor would widen the indices to the indptr's int64
    csr.indptr = csr.indptr.astype(np.int64, copy=False)  # pyright: ignore[reportAttributeAccessIssue]
    csr.indices = csr.indices.astype(np.int32, copy=False)  # pyright: ignore[reportAttributeAccessIssue]
    return csr


def count_dtype(n_samples: int) -> np.dtype:
    """Smallest safe integer type for counts of at most ``n_samples``."""
    return np.dtype(np.int32) if n_samples < 2**31 else np.dtype(np.int64)


def compact_index(matrix: sp.csr_array | sp.csc_array) -> sp.csr_array | sp.csc_array:
    """The same CSR/CSC with int32 ``indptr`` and ``indices`` where its sizes allow.

    scipy keeps the widest index type it is handed (one int64 ``indptr`` widens the
    indices too) and a conversion inherits it, so at research scale an int64 index
    doubles the largest arrays of the clustering path.
    """
    index_type = count_dtype(max(matrix.nnz, *matrix.shape))
    return type(matrix)(
        (matrix.data, matrix.indices.astype(index_type, copy=False), matrix.indptr.astype(index_type, copy=False)),
        shape=matrix.shape,
    )


@nb.njit(parallel=True, cache=True)
def csc_with_positions(
    row_indptr: IntArray, row_indices: IntArray, n_features: int, positions: IntArray, n_parts: int
) -> tuple[Int64Array, Int32Array, IntArray]:
    """Counting-sort transpose of a CSR with sorted rows: CSC indptr, the sample of each
    entry (sorted within a column), and each entry's position in the CSR arrays.

    Each of ``n_parts`` threads takes a contiguous range of samples; its entries go after those of the
    ranges before it in every column, so the result is the same for any thread count.
    """
    nnz = row_indices.size
    n_rows = row_indptr.size - 1
    n_parts = max(1, min(n_parts, n_rows))
    counts = np.zeros((n_parts, n_features), dtype=np.int64)
    for part in nb.prange(n_parts):
        for q in range(row_indptr[part * n_rows // n_parts], row_indptr[(part + 1) * n_rows // n_parts]):
            counts[part, row_indices[q]] += 1
    col_indptr = np.zeros(n_features + 1, dtype=np.int64)
    fills = np.empty((n_parts, n_features), dtype=np.int64)
    for f in range(n_features):
        at = col_indptr[f]
        for part in range(n_parts):
            fills[part, f] = at
            at += counts[part, f]
        col_indptr[f + 1] = at
    samples = np.empty(nnz, dtype=np.int32)
    for part in nb.prange(n_parts):
        fill = fills[part]
        for t in range(part * n_rows // n_parts, (part + 1) * n_rows // n_parts):
            for q in range(row_indptr[t], row_indptr[t + 1]):
                f = row_indices[q]
                samples[fill[f]] = t
                positions[fill[f]] = q
                fill[f] += 1
    return col_indptr, samples, positions


#: Samples per block: a block's rows (~block x active x 4 bytes) stay in cache while every
#: feature's output row is updated from them (measured best of 2k/8k/32k at 100k x 10k x 200).
SAMPLE_BLOCK = 8192


@nb.njit(parallel=True, cache=True)
def _upper_counts(
    row_indptr: IntArray,
    row_indices: IntArray,
    col_indptr: Int64Array,
    col_samples: Int32Array,
    col_positions: IntArray,
    out: IntArray,
    block: int,
) -> None:
    n_features = out.shape[0]
    n_rows = row_indptr.size - 1
    cursor = col_indptr[:-1].copy()  # per feature: first CSC entry not yet counted
    for t0 in range(0, n_rows, block):
        t1 = min(t0 + block, n_rows)
        for idx in nb.prange(n_features):
            # feature a has work ~ (its samples) x (features after it): pair low and high ids
            # so each thread's contiguous share of idx holds both (plain order gives one thread ~3/4)
            a = idx // 2 if idx % 2 == 0 else n_features - 1 - idx // 2
            row = out[a]
            p = cursor[a]
            stop = col_indptr[a + 1]
            while p < stop and col_samples[p] < t1:
                # rows are sorted, so the features after a in this sample start right after
                # a's own entry; knowing its position saves a binary search per entry
                for q in range(col_positions[p] + 1, row_indptr[col_samples[p] + 1]):
                    row[row_indices[q]] += 1
                p += 1
            cursor[a] = p
    for a in range(n_features):
        out[a, a] = col_indptr[a + 1] - col_indptr[a]


@nb.njit(parallel=True, cache=True)
def _mirror_upper(out: IntArray, tile: int = 64) -> None:
    """Copy the upper triangle onto the lower one, tile by tile (a plain transpose misses cache per element)."""
    n = out.shape[0]
    n_tiles = (n + tile - 1) // tile
    for bi in nb.prange(n_tiles):
        r0 = bi * tile
        for bj in range(bi + 1):
            c0 = bj * tile
            for r in range(r0, min(r0 + tile, n)):
                for c in range(c0, min(c0 + tile, r)):
                    out[r, c] = out[c, r]


def coactivation(activity: SparseMatrix) -> np.ndarray:
    """Exact co-firing counts: integer (features x features), symmetric, diagonal = counts.

    ``activity`` is a scipy sparse samples x features matrix (bool or uint8; any non-zero
    counts as active).  The result is int32 when there are fewer than 2**31 samples,
    int64 otherwise.
    """
    csr = as_activity_csr(activity)
    n_samples, n_features = csr.shape
    out = np.zeros((n_features, n_features), dtype=count_dtype(n_samples))
    if n_features == 0:
        return out
    # positions index the CSR arrays: int32 while they fit, which halves this map's memory
    positions = np.empty(csr.nnz, dtype=np.int32 if csr.nnz < 2**31 else np.int64)
    col_indptr, col_samples, col_positions = csc_with_positions(csr.indptr, csr.indices, n_features, positions, nb.get_num_threads())
    _upper_counts(csr.indptr, csr.indices, col_indptr, col_samples, col_positions, out, SAMPLE_BLOCK)
    _mirror_upper(out)
    return out

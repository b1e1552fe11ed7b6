"""Exact co-firing counts between features, in one format: :class:`CoFiring`.

``CoFiring.counts[a]`` is the number of samples on which feature ``a`` fires and
``CoFiring.pairs`` holds, for every pair ``a < b``, the number of samples on which both
fire, in scipy's condensed order (``scipy.spatial.distance.squareform``): row ``a``'s
later partners are contiguous.  That is half the square array's memory (8.6 GB of int32
at 65,536 features instead of 17.2 GB), and the merge's row scans read it in order.

Counts are integers end to end (no float product), computed by numba kernels that walk,
for each feature ``a``, the samples where it fires and the features ``b > a`` active there
(starting from ``a``'s own entry in the sample's sorted row, found through a position
map built with the transpose; Memberships' CSC is read block of samples by block, each block's
row view built from it).  Each output row is written by one thread only, so rows
parallelise without locks.  Frequent features count into their output row block of samples
by block (the block's rows stay in cache); the long tail of rare ones count into a
per-thread row in cache, written out in order once (see ``FREQUENT_FACTOR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numba as nb
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cluster_assets.core.arrays import Int32Array, Int64Array, IntArray
from cluster_assets.core.params import SparseMatrix


def row_starts(n_features: int) -> Int64Array:
    """(F,) int64: pair ``(a, b)``, ``a < b``, is at ``row_starts(F)[a] + b`` of the condensed array."""
    a = np.arange(n_features, dtype=np.int64)
    return n_features * a - a * (a + 1) // 2 - a - 1


@dataclass(frozen=True, eq=False)
class CoFiring:
    """Exact co-firing counts of F features (see the module docstring).

    counts: (F,) int64, each feature's firing count (the square array's diagonal).
    pairs: (F * (F - 1) / 2,) int32 (int64 from 2**31 samples), co-firing of each pair
        ``a < b`` in scipy's condensed order; entry ``row_starts(F)[a] + b``.
    """

    counts: Int64Array
    pairs: IntArray

    def __post_init__(self) -> None:
        f = self.counts.size
        if self.counts.ndim != 1 or self.pairs.shape != (f * (f - 1) // 2,):
            raise ValueError(f"{f} features need {f * (f - 1) // 2} condensed pairs, got shape {self.pairs.shape}")

    @property
    def n_features(self) -> int:
        return int(self.counts.size)

    @property
    def nbytes(self) -> int:
        return int(self.counts.nbytes + self.pairs.nbytes)

    def square(self, index: npt.ArrayLike | None = None) -> np.ndarray:
        """The dense symmetric (len(index), len(index)) block of the features ``index``
        (all by default), diagonal = counts; for small blocks (heatmaps, tests)."""
        at = np.arange(self.n_features) if index is None else np.asarray(index, dtype=np.int64)
        lo, hi = np.minimum.outer(at, at), np.maximum.outer(at, at)
        block = self.counts[lo].astype(self.pairs.dtype)
        apart = lo != hi
        block[apart] = self.pairs[row_starts(self.n_features)[lo[apart]] + hi[apart]]
        return block

    def at(self, a: int, b: int) -> int:
        """Co-firing count of features ``a`` and ``b`` (``a == b``: its firing count)."""
        if a == b:
            return int(self.counts[a])
        a, b = min(a, b), max(a, b)
        return int(self.pairs[self.n_features * a - a * (a + 1) // 2 + b - a - 1])

    def nonzero_pairs(self) -> int:
        """Pairs that co-fire at least once."""
        return int(np.count_nonzero(self.pairs))


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


def canonical_bool_csc(activity: SparseMatrix) -> sp.csc_array | None:
    """``activity`` itself when it is a canonical boolean CSC (what Memberships holds: each
    feature's samples, sorted), else None."""
    if isinstance(activity, sp.csc_array):
        csc = cast(sp.csc_array, activity)  # isinstance on the Any-typed SparseMatrix leaves the scalar type Unknown
        if csc.dtype == bool and csc.has_canonical_format:
            return csc
    return None


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


@nb.njit(cache=True)
def csc_sample_block(
    col_indptr: Int64Array, col_samples: IntArray, cursor: Int64Array, t0: int, t1: int
) -> tuple[Int64Array, Int32Array, Int64Array, Int32Array, Int32Array]:
    """Samples [t0, t1) of a CSC whose columns list their samples in order, from each column's
    ``cursor`` (its first entry at or after t0; advanced past the block): the block's CSC (indptr,
    samples - t0), its CSR (indptr, features: sorted rows) and each CSC entry's position in that
    CSR.  Features taken in order fill each row's entries in order, so a row's cursor is the position."""
    n_features = cursor.size
    b_indptr = np.zeros(n_features + 1, np.int64)
    ends = np.empty(n_features, np.int64)
    for f in range(n_features):
        p = cursor[f]
        while p < col_indptr[f + 1] and col_samples[p] < t1:
            p += 1
        ends[f] = p
        b_indptr[f + 1] = b_indptr[f] + p - cursor[f]
    samples = np.empty(b_indptr[n_features], np.int32)
    row_indptr = np.zeros(t1 - t0 + 1, np.int64)
    for f in range(n_features):
        at = b_indptr[f]
        for p in range(cursor[f], ends[f]):
            samples[at] = col_samples[p] - t0
            row_indptr[samples[at] + 1] += 1
            at += 1
        cursor[f] = ends[f]
    for t in range(t1 - t0):
        row_indptr[t + 1] += row_indptr[t]
    features = np.empty(samples.size, np.int32)
    positions = np.empty(samples.size, np.int32)
    fill = row_indptr[:-1].copy()
    for f in range(n_features):
        for q in range(b_indptr[f], b_indptr[f + 1]):
            t = samples[q]
            positions[q] = fill[t]
            features[fill[t]] = f
            fill[t] += 1
    return b_indptr, samples, row_indptr, features, positions


@nb.njit(cache=True)
def _entries_per_sample(samples: IntArray, n_samples: int) -> Int64Array:
    """``np.bincount(samples, minlength=n_samples)`` without its int64 copy of ``samples``."""
    counts = np.zeros(n_samples, np.int64)
    for t in samples:
        counts[t] += 1
    return counts


@nb.njit(cache=True)
def csc_rows(col_indptr: Int64Array, col_samples: IntArray, n_samples: int) -> tuple[Int64Array, Int32Array]:
    """The row view (CSR indptr, features: sorted rows) of a CSC whose columns list their
    samples, without a data array: features taken in order fill each row in order."""
    row_indptr = np.zeros(n_samples + 1, np.int64)
    row_indptr[1:] = np.cumsum(_entries_per_sample(col_samples, n_samples))
    features = np.empty(col_samples.size, np.int32)
    fill = row_indptr[:-1].copy()
    for f in range(col_indptr.size - 1):
        for q in range(col_indptr[f], col_indptr[f + 1]):
            features[fill[col_samples[q]]] = f
            fill[col_samples[q]] += 1
    return row_indptr, features


def sample_blocks(row_counts: IntArray, budget: int) -> list[tuple[int, int]]:
    """Consecutive [t0, t1) sample ranges covering ``row_counts`` (entries per sample), each
    holding at most ``budget`` entries unless one sample alone holds more."""
    ends = np.concatenate([[0], np.cumsum(row_counts, dtype=np.int64)])
    blocks: list[tuple[int, int]] = []
    t0 = 0
    while t0 < row_counts.size:
        t1 = max(int(np.searchsorted(ends, int(ends[t0]) + budget, side="right")) - 1, t0 + 1)
        blocks.append((t0, t1))
        t0 = t1
    return blocks


#: Samples per block: a block's rows (~block x active x 4 bytes) stay in cache while every
#: frequent feature's output row is updated from them (measured best of 2k/8k/32k at 100k x 10k x 200).
SAMPLE_BLOCK = 8192
#: A feature is frequent (counted block by block into its output row) when it fires on at
#: least ``FREQUENT_FACTOR * F / (A * SAMPLE_BLOCK)`` of the samples (A: mean active features
#: per sample); the others count in a per-thread row.  Blocking rereads the feature's output
#: row (4F bytes) once per block, a per-thread row rereads each of its samples' active lists
#: (4A bytes): they cost the same at that share with factor 1.  Measured best near 1.6 at
#: 9,981 features (100k x 200 active) and at 65,536 (200k x 64).
FREQUENT_FACTOR = 1.6
#: Entries per block of samples when a canonical boolean CSC (what Memberships holds) is counted
#: block by block: the block's row view and position map (~12 bytes per entry, ~200 MB) are all
#: that is held beside the input, whatever the number of samples.
BLOCK_ENTRIES = 1 << 24


@nb.njit(cache=True, inline="always")
def _feature_at(idx: int, n_features: int) -> int:
    """The idx-th feature in an order that alternates low and high ids: feature a's work is
    ~ (its samples) x (features after it), so any contiguous or strided share of idx holds
    both (plain order gives one thread ~3/4 of it)."""
    return idx // 2 if idx % 2 == 0 else n_features - 1 - idx // 2


@nb.njit(parallel=True, cache=True)
def _frequent_rows(
    row_indptr: IntArray,
    row_indices: IntArray,
    col_indptr: Int64Array,
    col_samples: Int32Array,
    col_positions: IntArray,
    pairs: IntArray,
    starts: Int64Array,
    frequent: npt.NDArray[np.bool_],
    block: int,
) -> None:
    """Output rows of the frequent features, block of samples by block: the block's rows stay in cache."""
    n_features = starts.size
    n_rows = row_indptr.size - 1
    cursor = col_indptr[:-1].copy()  # per feature: first CSC entry not yet counted
    for t0 in range(0, n_rows, block):
        t1 = min(t0 + block, n_rows)
        for idx in nb.prange(n_features):
            a = _feature_at(idx, n_features)
            if not frequent[a]:
                continue
            row = starts[a]
            p = cursor[a]
            stop = col_indptr[a + 1]
            while p < stop and col_samples[p] < t1:
                # rows are sorted, so the features after a in this sample start right after
                # a's own entry; knowing its position saves a binary search per entry
                for q in range(col_positions[p] + 1, row_indptr[col_samples[p] + 1]):
                    pairs[row + row_indices[q]] += 1
                p += 1
            cursor[a] = p


@nb.njit(parallel=True, cache=True)
def _rare_rows(
    row_indptr: IntArray,
    row_indices: IntArray,
    col_indptr: Int64Array,
    col_samples: Int32Array,
    col_positions: IntArray,
    pairs: IntArray,
    starts: Int64Array,
    frequent: npt.NDArray[np.bool_],
    n_parts: int,
) -> None:
    """Output rows of the other features, each counted whole in a per-thread dense row (in
    cache) whose non-zero entries are then written out in order: a rare feature's increments
    land a few per cache line of its output row, so counting there would miss on nearly
    every one.  Adds to ``pairs``."""
    n_features = starts.size
    n_parts = max(1, min(n_parts, n_features))
    acc = np.zeros((n_parts, n_features), dtype=pairs.dtype)
    for part in nb.prange(n_parts):
        counts = acc[part]
        for idx in range(part, n_features, n_parts):
            a = _feature_at(idx, n_features)
            if frequent[a]:
                continue
            for p in range(col_indptr[a], col_indptr[a + 1]):
                for q in range(col_positions[p] + 1, row_indptr[col_samples[p] + 1]):
                    counts[row_indices[q]] += 1
            row = starts[a]
            for b in range(a + 1, n_features):
                if counts[b]:  # most of a rare feature's pairs never co-fire
                    pairs[row + b] += counts[b]
                    counts[b] = 0


def coactivation(activity: SparseMatrix) -> CoFiring:
    """Exact co-firing counts of the columns of ``activity``, a scipy sparse samples x
    features matrix (bool or uint8; any non-zero counts as active).  The pairs are int32
    when there are fewer than 2**31 samples, int64 otherwise.  A canonical boolean CSC is
    counted in blocks of samples (counts add over samples), so beside it only one block's row
    view is held; any other input is converted to a CSR and counted whole."""
    given = canonical_bool_csc(activity)
    if given is not None:
        return _csc_coactivation(given)
    csr = as_activity_csr(activity)
    n_samples, n_features = csr.shape
    pairs = np.zeros(n_features * (n_features - 1) // 2, dtype=count_dtype(n_samples))
    if n_features == 0:
        return CoFiring(np.zeros(0, np.int64), pairs)
    # positions index the CSR arrays: int32 while they fit, which halves this map's memory
    positions = np.empty(csr.nnz, dtype=np.int32 if csr.nnz < 2**31 else np.int64)
    col_indptr, col_samples, col_positions = csc_with_positions(csr.indptr, csr.indices, n_features, positions, nb.get_num_threads())
    starts, frequent = row_starts(n_features), _frequent(np.diff(col_indptr), n_samples)
    arrays = (csr.indptr, csr.indices, col_indptr, col_samples, col_positions, pairs, starts, frequent)
    _frequent_rows(*arrays, SAMPLE_BLOCK)
    _rare_rows(*arrays, nb.get_num_threads())
    return CoFiring(np.diff(col_indptr), pairs)


def _csc_coactivation(csc: sp.csc_array) -> CoFiring:
    """:func:`coactivation` of a canonical boolean CSC, block of samples by block."""
    n_samples, n_features = csc.shape
    pairs = np.zeros(n_features * (n_features - 1) // 2, dtype=count_dtype(n_samples))
    col_indptr = csc.indptr.astype(np.int64)
    counts = np.diff(col_indptr)
    if n_features == 0:
        return CoFiring(counts, pairs)
    starts, frequent = row_starts(n_features), _frequent(counts, n_samples)
    cursor = col_indptr[:-1].copy()
    for t0, t1 in sample_blocks(_entries_per_sample(csc.indices, n_samples), BLOCK_ENTRIES):
        b_indptr, b_samples, row_indptr, row_features, positions = csc_sample_block(col_indptr, csc.indices, cursor, t0, t1)
        arrays = (row_indptr, row_features, b_indptr, b_samples, positions, pairs, starts, frequent)
        _frequent_rows(*arrays, SAMPLE_BLOCK)
        _rare_rows(*arrays, nb.get_num_threads())
    return CoFiring(counts, pairs)


def _frequent(counts: Int64Array, n_samples: int) -> npt.NDArray[np.bool_]:
    """Which features count block by block into their output row (see ``FREQUENT_FACTOR``)."""
    mean_active = max(int(counts.sum()) / max(n_samples, 1), 1.0)
    share = FREQUENT_FACTOR * counts.size / (mean_active * SAMPLE_BLOCK)
    return counts >= share * n_samples

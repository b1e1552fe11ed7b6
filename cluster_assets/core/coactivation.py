"""Exact co-firing counts between features, in one format: :class:`CoFiring`.

``CoFiring.counts[a]`` is the number of samples on which feature ``a`` fires and
``CoFiring.pairs`` is a scipy CSR array of the strict upper triangle: entry ``(a, b)``,
``a < b``, is the number of samples on which both fire, and pairs that never co-fire are not
stored.  Wide SAEs co-fire sparsely (3.6% of pairs at 65,536 features on the heavy-tailed
benchmark workload), so that is ~0.6 GB where the condensed triangle is 8.6 GB of int32.
The merge expands it to the condensed triangle (:meth:`CoFiring.condensed`, scipy's
``squareform`` order), which it updates in place.

Counts are integers end to end (no float product), computed by numba kernels that walk,
for each feature ``a``, the samples where it fires and the features ``b > a`` active there
(starting from ``a``'s own entry in the sample's sorted row, found through a position
map built with the transpose; Memberships' CSC is read block of samples by block, each block's
row view built from it).  Each output row is written by one thread only, so rows
parallelise without locks and the bytes do not depend on the thread count.  Frequent features
count block of samples by block into a dense row (the block's rows stay in cache); the long
tail of rare ones count into a per-thread row in cache whose touched entries are found through
a bitmap and written out in order (see ``DENSE_ROW_RATIO``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, cast

import numba as nb
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from numba.cpython.unsafe.numbers import trailing_zeros  # pyright: ignore[reportUnknownVariableType]

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
    pairs: (F, F) scipy ``csr_array``, the strict upper triangle with sorted indices and no
        stored zeros; data int32 (int64 from 2**31 samples), indices and indptr int32 while
        the entries fit (int64 beyond).
    """

    counts: Int64Array
    pairs: sp.csr_array

    def __post_init__(self) -> None:
        f = self.counts.size
        # any object can reach here at run time, whatever the annotation says
        if self.counts.ndim != 1 or not isinstance(self.pairs, sp.csr_array) or self.pairs.shape != (f, f):  # pyright: ignore[reportUnnecessaryIsInstance]
            shape = getattr(self.pairs, "shape", None)
            raise ValueError(
                f"{f} features need an ({f}, {f}) upper-triangular csr_array of pairs, got {type(self.pairs).__name__} {shape}"
            )

    @classmethod
    def from_condensed(cls, counts: npt.ArrayLike, condensed: IntArray) -> CoFiring:
        """The counts whose pairs are ``condensed`` (scipy's ``squareform`` order, (F(F-1)/2,)):
        the inverse of :meth:`condensed`."""
        counts = np.asarray(counts, dtype=np.int64)
        f = counts.size
        if condensed.shape != (f * (f - 1) // 2,):
            raise ValueError(f"{f} features need {f * (f - 1) // 2} condensed pairs, got shape {condensed.shape}")
        at = np.flatnonzero(condensed)
        starts = row_starts(f)
        rows = np.searchsorted(starts + np.arange(f) + 1, at, side="right") - 1
        lengths = np.bincount(rows, minlength=f)
        return cls(counts, upper_csr(condensed[at], (at - starts[rows]).astype(np.int32), np.concatenate([[0], np.cumsum(lengths)]), f))

    @property
    def n_features(self) -> int:
        return int(self.counts.size)

    @property
    def nbytes(self) -> int:
        p = self.pairs
        return int(self.counts.nbytes + p.data.nbytes + p.indices.nbytes + p.indptr.nbytes)

    def condensed(self) -> IntArray:
        """(F(F-1)/2,) every pair's count in scipy's condensed order (entry ``row_starts(F)[a] + b``
        for ``a < b``), the pairs' dtype: what the merge updates in place."""
        out = np.zeros(self.n_features * (self.n_features - 1) // 2, dtype=self.pairs.dtype)
        p = self.pairs
        _scatter_condensed(p.indptr, p.indices, p.data, row_starts(self.n_features), out)
        return out

    def square(self, index: npt.ArrayLike | None = None) -> np.ndarray:
        """The dense symmetric (len(index), len(index)) block of the features ``index``
        (all by default), diagonal = counts; for small blocks (heatmaps, tests)."""
        at = np.arange(self.n_features) if index is None else np.asarray(index, dtype=np.int64)
        lo, hi = np.minimum.outer(at, at), np.maximum.outer(at, at)
        block = self.counts[lo].astype(self.pairs.dtype)
        apart = lo != hi
        p = self.pairs
        block[apart] = _pair_values(p.indptr, p.indices, p.data, lo[apart], hi[apart])
        return block

    def at(self, a: int, b: int) -> int:
        """Co-firing count of features ``a`` and ``b`` (``a == b``: its firing count)."""
        if a == b:
            return int(self.counts[a])
        a, b = min(a, b), max(a, b)
        p = self.pairs
        return int(_pair_values(p.indptr, p.indices, p.data, np.array([a]), np.array([b]))[0])

    def nonzero_pairs(self) -> int:
        """Pairs that co-fire at least once (the stored entries)."""
        return int(self.pairs.nnz)


def upper_csr(data: IntArray, indices: IntArray, indptr: IntArray, n_features: int) -> sp.csr_array:
    """The (F, F) csr_array of a strict upper triangle's sorted rows, with int32 index arrays while
    the entries fit (scipy widens the indices to the indptr's type, which would double them)."""
    index_type = count_dtype(max(int(indptr[-1]), n_features))
    return sp.csr_array(
        (data, indices.astype(index_type, copy=False), indptr.astype(index_type, copy=False)), shape=(n_features, n_features)
    )


@nb.njit(parallel=True, cache=True)
def _scatter_condensed(indptr: IntArray, indices: IntArray, data: IntArray, starts: Int64Array, out: IntArray) -> None:
    for a in nb.prange(indptr.size - 1):
        for q in range(indptr[a], indptr[a + 1]):
            out[starts[a] + indices[q]] = data[q]


@nb.njit(cache=True)
def _pair_values(indptr: IntArray, indices: IntArray, data: IntArray, lo: Int64Array, hi: Int64Array) -> IntArray:
    """Entries (lo[i], hi[i]) of a CSR with sorted rows (0 where not stored), by binary search."""
    out = np.zeros(lo.size, data.dtype)
    for i in range(lo.size):
        left, right, b = indptr[lo[i]], indptr[lo[i] + 1], hi[i]
        end = right
        while left < right:
            middle = (left + right) // 2
            if indices[middle] < b:
                left = middle + 1
            else:
                right = middle
        if left < end and indices[left] == b:
            out[i] = data[left]
    return out


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
#: frequent feature's dense row is updated from them (measured best of 2k/8k/32k at 100k x 10k x 200).
SAMPLE_BLOCK = 8192
#: A feature ``a`` is frequent (counted block of samples by block into a dense row, its
#: partners b > a) when its samples x ``DENSE_ROW_RATIO`` reach that row's length F - 1 - a; the
#: others count in a per-thread row.  A dense row costs its length once (zeroed, read back); a
#: rare feature's samples are each a random read of that sample's row of the activity, which the
#: blocked kernel finds in cache.  Measured best near 16 of 4 / 16 / 64 / 256 at 9,981 features
#: (100k samples x 200 active: ~85% frequent) and at 65,536 (200k x 64: ~3%).
DENSE_ROW_RATIO = 16
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
    dense: IntArray,
    starts: Int64Array,
    frequent: npt.NDArray[np.bool_],
    block: int,
) -> None:
    """Dense rows of the frequent features (pair ``(a, b)`` at ``dense[starts[a] + b]``), block of
    samples by block: the block's rows stay in cache.  Adds to ``dense``."""
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
                    dense[row + row_indices[q]] += 1
                p += 1
            cursor[a] = p


@nb.njit(parallel=True, cache=True)
def _row_bounds(
    row_indptr: IntArray,
    col_indptr: Int64Array,
    col_samples: Int32Array,
    col_positions: IntArray,
    frequent: npt.NDArray[np.bool_],
    emit: npt.NDArray[np.bool_],
) -> Int64Array:
    """Per feature ``a``: at most how many features ``b > a`` co-fire with it -- all of them for a
    frequent one (its dense row holds earlier blocks too), else at most the features after it in
    each of its samples -- 0 where ``emit`` is False."""
    n_features = col_indptr.size - 1
    bound = np.zeros(n_features, np.int64)
    for a in nb.prange(n_features):
        if emit[a] and frequent[a]:
            bound[a] = n_features - 1 - a
        elif emit[a]:
            total = 0
            for p in range(col_indptr[a], col_indptr[a + 1]):
                total += row_indptr[col_samples[p] + 1] - col_positions[p] - 1
            bound[a] = min(total, n_features - 1 - a)
    return bound


@nb.njit(parallel=True, cache=True)
def _sparse_rows(
    row_indptr: IntArray,
    row_indices: IntArray,
    col_indptr: Int64Array,
    col_samples: Int32Array,
    col_positions: IntArray,
    dense: IntArray,
    starts: Int64Array,
    frequent: npt.NDArray[np.bool_],
    emit: npt.NDArray[np.bool_],
    offsets: Int64Array,
    partners: Int32Array,
    shared: IntArray,
    n_parts: int,
) -> Int64Array:
    """Row ``a`` of the upper triangle, for each feature with ``emit[a]``, written in order at
    ``offsets[a]`` of ``partners`` (features b > a) and ``shared`` (their counts); returns each
    row's length.  A frequent feature's row is its dense row's non-zero entries; a rare one is
    counted whole in a per-thread dense row in cache, and a bitmap of the entries it touched
    gives them back in order (a rare feature's pairs land a few per cache line of a dense row)."""
    n_features = col_indptr.size - 1
    lengths = np.zeros(n_features, np.int64)
    n_parts = max(1, min(n_parts, n_features))
    words = (n_features + 63) // 64
    scratch = np.zeros((n_parts, n_features), shared.dtype)
    bitmaps = np.zeros((n_parts, words), np.uint64)
    one = np.uint64(1)
    for part in nb.prange(n_parts):
        counts = scratch[part]
        touched = bitmaps[part]
        for idx in range(part, n_features, n_parts):
            a = _feature_at(idx, n_features)
            if not emit[a]:
                continue
            at = offsets[a]
            if frequent[a]:
                row = starts[a]
                for b in range(a + 1, n_features):
                    if dense[row + b]:
                        partners[at] = b
                        shared[at] = dense[row + b]
                        at += 1
            else:
                for p in range(col_indptr[a], col_indptr[a + 1]):
                    for q in range(col_positions[p] + 1, row_indptr[col_samples[p] + 1]):
                        b = row_indices[q]
                        counts[b] += 1
                        touched[b >> 6] |= one << np.uint64(b & 63)
                for w in range((a + 1) >> 6, words):
                    word = touched[w]
                    if word:
                        touched[w] = 0
                        while word:
                            b = w * 64 + trailing_zeros(word)  # pyright: ignore[reportCallIssue]  (a numba intrinsic)
                            partners[at] = b
                            shared[at] = counts[b]
                            counts[b] = 0
                            at += 1
                            word &= word - one
            lengths[a] = at - offsets[a]
    return lengths


@nb.njit(cache=True)
def _close_gaps(offsets: Int64Array, lengths: Int64Array, partners: Int32Array, shared: IntArray) -> Int64Array:
    """Move each row from its bound's slot down to the end of the row before (rows only move
    left, so one pass in order is safe); returns the CSR indptr."""
    indptr = np.zeros(lengths.size + 1, np.int64)
    at = 0
    for a in range(lengths.size):
        src = offsets[a]
        if src != at:
            for q in range(lengths[a]):
                partners[at + q] = partners[src + q]
                shared[at + q] = shared[src + q]
        at += lengths[a]
        indptr[a + 1] = at
    return indptr


class _Counting(NamedTuple):
    """What the counting kernels read (a sample range's row view and CSC with positions) and the
    frequent features' dense rows, in the kernels' argument order."""

    row_indptr: IntArray
    row_indices: IntArray
    col_indptr: Int64Array
    col_samples: Int32Array
    col_positions: IntArray
    dense: IntArray
    starts: Int64Array
    frequent: npt.NDArray[np.bool_]


def _upper_rows(arrays: _Counting, emit: npt.NDArray[np.bool_], count_type: np.dtype) -> sp.csr_array:
    """The rows ``emit`` of the upper triangle as a csr_array (see :func:`_sparse_rows`).  Each row
    is written into a slot of its bound, then the gaps are closed: memory for the bounds is
    reserved, not touched."""
    a = arrays
    bound = _row_bounds(a.row_indptr, a.col_indptr, a.col_samples, a.col_positions, a.frequent, emit)
    offsets = np.concatenate([[0], np.cumsum(bound)[:-1]]).astype(np.int64)
    partners, shared = np.empty(int(bound.sum()), np.int32), np.empty(int(bound.sum()), count_type)
    lengths = _sparse_rows(*arrays, emit, offsets, partners, shared, nb.get_num_threads())
    indptr = _close_gaps(offsets, lengths, partners, shared)
    nnz = int(indptr[-1])
    # shrink in place (realloc): a copy would touch the entries' memory once more
    partners.resize((nnz,), refcheck=False)  # pyright: ignore[reportCallIssue]
    shared.resize((nnz,), refcheck=False)  # pyright: ignore[reportCallIssue]
    return upper_csr(shared, partners, indptr, a.starts.size)


def _dense_rows(counts: Int64Array, frequent: npt.NDArray[np.bool_], count_type: np.dtype) -> tuple[IntArray, Int64Array]:
    """A zeroed buffer holding the frequent features' rows of the upper triangle one after the
    other, and ``starts`` (pair ``(a, b)`` of a frequent ``a`` at ``starts[a] + b``)."""
    f = counts.size
    lengths = np.where(frequent, f - 1 - np.arange(f), 0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) - np.arange(f) - 1
    return np.zeros(int(lengths.sum()), dtype=count_type), starts


def coactivation(activity: SparseMatrix) -> CoFiring:
    """Exact co-firing counts of the columns of ``activity``, a scipy sparse samples x
    features matrix (bool or uint8; any non-zero counts as active).  The counts are int32
    when there are fewer than 2**31 samples, int64 otherwise.  A canonical boolean CSC is
    counted in blocks of samples (counts add over samples), so beside it only one block's row
    view is held; any other input is converted to a CSR and counted whole."""
    given = canonical_bool_csc(activity)
    if given is not None:
        return _csc_coactivation(given)
    csr = as_activity_csr(activity)
    n_samples, n_features = csr.shape
    # positions index the CSR arrays: int32 while they fit, which halves this map's memory
    positions = np.empty(csr.nnz, dtype=np.int32 if csr.nnz < 2**31 else np.int64)
    col_indptr, col_samples, col_positions = csc_with_positions(csr.indptr, csr.indices, n_features, positions, nb.get_num_threads())
    counts = np.diff(col_indptr)
    count_type = count_dtype(n_samples)
    frequent = _frequent(counts)
    dense, starts = _dense_rows(counts, frequent, count_type)
    arrays = _Counting(csr.indptr, csr.indices, col_indptr, col_samples, col_positions, dense, starts, frequent)
    _frequent_rows(*arrays, SAMPLE_BLOCK)
    return CoFiring(counts, _upper_rows(arrays, np.ones(n_features, dtype=bool), count_type))


def _csc_coactivation(csc: sp.csc_array) -> CoFiring:
    """:func:`coactivation` of a canonical boolean CSC, block of samples by block: the frequent
    features' dense rows add up over the blocks, each block's rare rows are a csr_array, and the
    last block's carries the frequent rows too; the blocks' arrays are summed."""
    n_samples, n_features = csc.shape
    col_indptr = csc.indptr.astype(np.int64)
    counts = np.diff(col_indptr)
    count_type = count_dtype(n_samples)
    frequent = _frequent(counts)
    dense, starts = _dense_rows(counts, frequent, count_type)
    cursor = col_indptr[:-1].copy()
    blocks = sample_blocks(_entries_per_sample(csc.indices, n_samples), BLOCK_ENTRIES)
    total: sp.csr_array | None = None
    for number, (t0, t1) in enumerate(blocks, start=1):
        b_indptr, b_samples, row_indptr, row_features, positions = csc_sample_block(col_indptr, csc.indices, cursor, t0, t1)
        arrays = _Counting(row_indptr, row_features, b_indptr, b_samples, positions, dense, starts, frequent)
        _frequent_rows(*arrays, SAMPLE_BLOCK)
        rows = _upper_rows(arrays, np.ones(n_features, bool) if number == len(blocks) else ~frequent, count_type)
        total = rows if total is None else _sum(total, rows)
    if total is None:  # no samples
        total = upper_csr(np.zeros(0, count_type), np.zeros(0, np.int32), np.zeros(n_features + 1, np.int64), n_features)
    return CoFiring(counts, total)


def _sum(a: sp.csr_array, b: sp.csr_array) -> sp.csr_array:
    """Entry-wise sum of two upper triangles, in the count type and compact index types."""
    total = sp.csr_array(a + b)
    total.sort_indices()
    return upper_csr(total.data.astype(a.dtype, copy=False), total.indices, total.indptr, a.shape[0])


def _frequent(counts: Int64Array) -> npt.NDArray[np.bool_]:
    """Which features count block by block into a dense row (see ``DENSE_ROW_RATIO``)."""
    f = counts.size
    return counts * DENSE_ROW_RATIO >= f - 1 - np.arange(f)

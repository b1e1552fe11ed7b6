"""Sorted sample-set kernels and the exact group counts of a merge update."""

from __future__ import annotations

import numba as nb
import numpy as np

from cluster_assets.core.arrays import Int64Array, IntArray


@nb.njit(cache=True)
def intersect_sorted(a: IntArray, b: IntArray) -> IntArray:
    out = np.empty(min(a.size, b.size), dtype=a.dtype)
    i = j = n = 0
    while i < a.size and j < b.size:
        if a[i] < b[j]:
            i += 1
        elif a[i] > b[j]:
            j += 1
        else:
            out[n] = a[i]
            n += 1
            i += 1
            j += 1
    return out[:n]


@nb.njit(cache=True)
def union_sorted(a: IntArray, b: IntArray, size: int) -> IntArray:
    """Sorted union of sorted a and b, which holds ``size`` entries (the merge knows it from the
    counts: |a| + |b| - |a & b|): allocated exactly, as a slice of an |a| + |b| buffer would keep
    up to twice the group's samples alive for the rest of the run."""
    out = np.empty(size, dtype=a.dtype)
    i = j = n = 0
    while i < a.size or j < b.size:
        if j >= b.size or (i < a.size and a[i] < b[j]):
            value = a[i]
            i += 1
        elif i >= a.size or b[j] < a[i]:
            value = b[j]
            j += 1
        else:
            value = a[i]
            i += 1
            j += 1
        if n < size:
            out[n] = value
        n += 1
    if n != size:
        raise ValueError("the union's size differs from the one given")
    return out


@nb.njit(cache=True)
def difference_sorted(a: IntArray, b: IntArray) -> IntArray:
    """Sorted a minus b."""
    out = np.empty(a.size, dtype=a.dtype)
    i = j = n = 0
    while i < a.size:
        while j < b.size and b[j] < a[i]:
            j += 1
        if j >= b.size or b[j] != a[i]:
            out[n] = a[i]
            n += 1
        i += 1
    return out[:n]


@nb.njit(parallel=True, cache=True)
def group_counts(
    samples: IntArray, row_indptr: IntArray, row_indices: IntArray, label: Int64Array, n_slots: int, n_chunks: int
) -> Int64Array:
    """For every group slot g: on how many of the given samples g is active (each sample once)."""
    partial = np.zeros((n_chunks, n_slots), dtype=np.int64)
    step = (samples.size + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        stamp = np.full(n_slots, -1, dtype=np.int64)
        counts = partial[c]
        for idx in range(c * step, min((c + 1) * step, samples.size)):
            t = samples[idx]
            for p in range(row_indptr[t], row_indptr[t + 1]):
                g = label[row_indices[p]]
                if stamp[g] != t:
                    stamp[g] = t
                    counts[g] += 1
    return partial.sum(axis=0)


#: How :func:`merge_rows` forms ``|(I | J) & M|`` from the scanned samples' counts ``extra``.
BOTH_MINUS_COMMON, I_PLUS_J_ONLY, J_PLUS_I_ONLY = 0, 1, 2


@nb.njit(parallel=True, cache=True)
def merge_rows(
    pairs: IntArray, starts: Int64Array, active: Int64Array, i: int, j: int, extra: Int64Array, mode: int, merged_row: Int64Array
) -> None:
    """Co-firing of the merged group ``I | J`` (kept in slot ``i``) with every other active slot ``m``,
    written into ``i``'s condensed entries and into ``merged_row[m]``.

    mode BOTH_MINUS_COMMON: ``|I&M| + |J&M| - extra[m]`` (``extra`` counted on I & J);
    I_PLUS_J_ONLY: ``|I&M| + extra[m]`` (on J - I); J_PLUS_I_ONLY: ``|J&M| + extra[m]`` (on I - J).
    Each ``m`` is one entry written by one thread.
    """
    for a in nb.prange(active.size):
        m = active[a]
        if m in (i, j):
            continue
        at_i = starts[m] + i if m < i else starts[i] + m
        if mode == J_PLUS_I_ONLY:
            value = np.int64(0)
        else:
            value = np.int64(pairs[at_i])
        if mode != I_PLUS_J_ONLY:
            value += pairs[starts[m] + j] if m < j else pairs[starts[j] + m]
        value += -extra[m] if mode == BOTH_MINUS_COMMON else extra[m]
        merged_row[m] = value
        pairs[at_i] = value

"""The full-scan samplers: every pair's key recomputed at every step (O(k^2) per merge).

They are the reference the row-extremes samplers (:mod:`.row_extremes`) are tested against.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from cluster_assets.core.arrays import Float64Array, Int64Array, IntArray
from cluster_assets.core.merge.cost import key_at


@nb.njit(parallel=True, cache=True)
def _row_key_ranges(
    active: Int64Array, s: Int64Array, r: Int64Array, pairs: IntArray, starts: Int64Array, alpha: float, log_km1: float
) -> tuple[Float64Array, Float64Array]:
    """Per row a (pairs active[a] < active[b], b > a): smallest and largest key."""
    n = active.size
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    for a in nb.prange(n - 1):
        i: int = active[a]
        row_lo, row_hi = np.inf, -np.inf
        for b in range(a + 1, n):
            key = key_at(alpha, log_km1, s, r, pairs, starts, i, active[b])
            row_lo = min(row_lo, key)
            row_hi = max(row_hi, key)
        lo[a], hi[a] = row_lo, row_hi
    return lo, hi


@nb.njit(parallel=True, cache=True)
def _row_counts_below(
    active: Int64Array, s: Int64Array, r: Int64Array, pairs: IntArray, starts: Int64Array, alpha: float, log_km1: float, cut: float
) -> Int64Array:
    n = active.size
    counts = np.zeros(n, dtype=np.int64)
    for a in nb.prange(n - 1):
        i: int = active[a]
        c = 0
        for b in range(a + 1, n):
            if key_at(alpha, log_km1, s, r, pairs, starts, i, active[b]) <= cut:
                c += 1
        counts[a] = c
    return counts


@nb.njit(parallel=True, cache=True)
def _row_weights(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    lo: float,
    scale: float,
) -> Float64Array:
    n = active.size
    sums = np.zeros(n)
    for a in nb.prange(n - 1):
        i: int = active[a]
        acc = 0.0
        for b in range(a + 1, n):
            acc += math.exp((lo - key_at(alpha, log_km1, s, r, pairs, starts, i, active[b])) * scale)
        sums[a] = acc
    return sums


@nb.njit(cache=True)
def scan_range_pick(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    threshold: float,
    u: float,
) -> tuple[int, int, float]:
    """Uniform choice among pairs with key <= min + threshold * (max - min), in row-major order.

    Rows are counted in parallel; the target is located by a prefix sum over rows, then
    within its row, so the choice is the same as one sequential row-major scan.
    """
    lo_rows, hi_rows = _row_key_ranges(active, s, r, pairs, starts, alpha, log_km1)
    lo, hi = lo_rows.min(), hi_rows.max()
    cut = lo + threshold * (hi - lo)
    counts = _row_counts_below(active, s, r, pairs, starts, alpha, log_km1, cut)
    total = counts.sum()
    target = min(int(u * total), total - 1)
    n = active.size
    for a in range(n - 1):
        if target >= counts[a]:
            target -= counts[a]
            continue
        i: int = active[a]
        for b in range(a + 1, n):
            j = active[b]
            key = key_at(alpha, log_km1, s, r, pairs, starts, i, j)
            if key <= cut:
                if target == 0:
                    return i, j, key
                target -= 1
    return -1, -1, 0.0


@nb.njit(cache=True)
def scan_mcmc_pick(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    scale: float,
    u: float,
) -> tuple[int, int, float]:
    """Pair drawn with probability proportional to exp((min_key - key) * scale).

    Row weight sums are computed in parallel (each row by one thread, so the sums are
    reproducible); the row is found by a prefix sum, then the pair within the row.
    """
    lo_rows, _ = _row_key_ranges(active, s, r, pairs, starts, alpha, log_km1)
    lo = lo_rows.min()
    sums = _row_weights(active, s, r, pairs, starts, alpha, log_km1, lo, scale)
    target = u * sums.sum()
    n = active.size
    last_i, last_j, last_key = -1, -1, 0.0
    acc = 0.0
    for a in range(n - 1):
        if acc + sums[a] <= target and a < n - 2:
            acc += sums[a]
            continue
        i: int = active[a]
        for b in range(a + 1, n):
            j = active[b]
            key = key_at(alpha, log_km1, s, r, pairs, starts, i, j)
            w = math.exp((lo - key) * scale)
            if w > 0.0:
                last_i, last_j, last_key = i, j, key
            acc += w
            if acc > target and w > 0.0:
                return i, j, key
    return last_i, last_j, last_key

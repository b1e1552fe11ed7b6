"""The row-extremes samplers: exact pair selection without scanning all k^2 pairs every step.

The merge key of a pair is ``key_ij(L) = alpha * M_ij - L * c_ij`` with
``L = log2(k - 1)``; between merges only ``L`` changes, and it only decreases, so no key
ever falls.  Each row ``i`` (pairs ``i < j`` over active slots) stores its extreme (argmin
of ``f = sgn * key``: ``sgn = +1`` for minima, ``-1`` for maxima), the smallest ``L`` for
which that stored pair is still within ``margin / 2`` of the row's true extreme (lines with
a smaller slope overtake it as ``L`` falls), and -- for minima -- a floor: a lower bound on
every key of the row, lowered whenever one of its entries changes.  A step then:

1. evaluates every row's stored extreme (O(k)); a minima row whose stored pair is no longer
   valid counts at its floor, and is rebuilt (O(k)) only once that floor is within
   ``margin`` of the lowest value -- so a merge that invalidates the stored pair of many
   rows far above the minimum (a popular partner merging) costs O(k), not O(k^2);
2. fully rescans only the rows whose value is within ``margin`` of the global one, which
   gives the exact floating-point minimum (and maximum) of all keys;
3. for the greedy sampler collects every pair that ties the minimum, scanning only rows
   whose minimum can be that low -- in row-major order, the same set and order as a
   full scan, so the draw picks the same pair; for the range sampler (threshold > 0)
   draws uniformly among the pairs at or below ``lo + threshold * (hi - lo)`` by
   rejection from those rows (:func:`range_pick`), listing them only when that is cheaper;
4. after the merge, marks for rebuild the merged row and rows whose stored pair was one
   of the merged groups, and checks every other row's new entry (O(1) per row).

``margin`` is orders of magnitude above the rounding error of any key, so the chosen pair
is identical to the full-scan sampler's (tests compare them bit for bit); a row's floor
(in place of its extreme) only widens the rows a sampler reads, each pair checked exactly.
"""

from __future__ import annotations

import math
from typing import cast

import numba as nb
import numpy as np

from cluster_assets.core.arrays import Float64Array, Int64Array, IntArray
from cluster_assets.core.merge.cost import key_at, pair_key

DIRTY = np.inf  # validity bound that forces a rebuild at the next step

#: One sign's per-slot row arrays: stored partner (best), its co-firing (best_c) and integer
#: part M (best_m: both fixed while the pair is stored, as neither group merges), validity
#: bound (valid) and floor (a lower bound on the row's sgn*key; minima rows only).
RowArrays = tuple[Int64Array, Int64Array, Int64Array, Float64Array, Float64Array]


@nb.njit(cache=True)
def _rebuild(
    i: int,
    active: Int64Array,
    start: int,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    margin: float,
    rows: RowArrays,
    sgn: float,
) -> None:
    """Row i's extreme of sgn*key (pairs with active slots after i), its validity bound and floor."""
    best, best_c, best_m, valid, floor = rows
    n = active.size
    best_j, best_f = -1, np.inf
    for b in range(start, n):
        j = active[b]
        f = sgn * key_at(alpha, log_km1, s, r, pairs, starts, i, j)
        if f < best_f:
            best_f, best_j = f, j
    best[i] = best_j
    floor[i] = best_f - 0.5 * margin
    bound = -np.inf
    if best_j >= 0:
        c_star = pairs[starts[i] + best_j]
        best_c[i] = c_star
        best_m[i] = s[i] * r[best_j] + s[best_j] * r[i] - c_star * (r[i] + r[best_j])
        for b in range(start, n):
            j = active[b]
            dc = sgn * (c_star - pairs[starts[i] + j])
            if dc > 0:  # as L falls, f_j - f_star shrinks at rate dc: it overtakes at this L
                d0 = sgn * key_at(alpha, log_km1, s, r, pairs, starts, i, j) - best_f
                cross = log_km1 - (d0 + 0.5 * margin) / dc
                if cross > bound:
                    bound = cross
    valid[i] = bound


@nb.njit(cache=True, inline="always")
def _stored_value(i: int, alpha: float, log_km1: float, s: Int64Array, r: Int64Array, rows: RowArrays, sgn: float) -> float:
    best, best_c, best_m, _, _ = rows
    # pair_key's arithmetic on the stored M: the same float, without reading the partner's counts
    return sgn * (alpha * best_m[i] - log_km1 * best_c[i]) if best[i] >= 0 else np.inf


@nb.njit(cache=True)
def _stored(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    margin: float,
    rows: RowArrays,
    sgn: float,
) -> tuple[Float64Array, float]:
    """Per row, sgn*key of its stored pair -- or, for a minima row that needs a rebuild, a
    lower bound (its floor) -- and the lowest of these values.

    A minima row is rebuilt only once its floor is within ``margin`` of the lowest value:
    keys never fall as L does, so the floor bounds the row until one of its entries changes
    (:func:`_after_merge` lowers it then), and a row far above the minimum can wait.  Every
    sampler reads the rows within some distance of the lowest value and checks each pair it
    reads, so a lower bound in place of a row's extreme only widens what it reads.  The
    stored pair's key comes from ``best_c`` and ``best_m``: no read of the big array or of the
    partner's counts, so this O(k) pass reads only arrays in slot order.
    """
    _, _, _, valid, floor = rows
    n = active.size
    stored = np.full(n, np.inf)
    waiting = np.empty(n, dtype=np.int64)  # positions of rows that wait for a rebuild
    n_waiting = 0
    for a in range(n - 1):
        i: int = active[a]
        if log_km1 < valid[i]:
            if sgn > 0 and floor[i] > -np.inf:
                stored[a] = floor[i]
                waiting[n_waiting] = a
                n_waiting += 1
                continue
            _rebuild(i, active, a + 1, s, r, pairs, starts, alpha, log_km1, margin, rows, sgn)
        stored[a] = _stored_value(i, alpha, log_km1, s, r, rows, sgn)
    low = stored.min()
    while n_waiting:  # rebuild the waiting rows that can reach the lowest value, until none can
        kept = 0
        for w in range(n_waiting):
            a = int(waiting[w])
            if stored[a] <= low + margin:
                i = active[a]
                _rebuild(i, active, a + 1, s, r, pairs, starts, alpha, log_km1, margin, rows, sgn)
                stored[a] = _stored_value(i, alpha, log_km1, s, r, rows, sgn)
            else:
                waiting[kept] = a
                kept += 1
        if kept == n_waiting:
            break
        n_waiting = kept
        low = stored.min()
    return stored, low


@nb.njit(cache=True)
def _exact_extreme(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    margin: float,
    stored: Float64Array,
    low: float,
    sgn: float,
) -> float:
    """Exact min of sgn*key over all pairs: only rows whose stored value is near ``low`` can hold it."""
    n = active.size
    exact = np.inf
    for a in range(n - 1):
        if stored[a] <= low + margin:
            i = active[a]
            for b in range(a + 1, n):
                exact = min(exact, sgn * key_at(alpha, log_km1, s, r, pairs, starts, i, active[b]))
    return exact


@nb.njit(cache=True)
def _collect_below(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    cut: float,
    stored_min: Float64Array,
    margin: float,
    out_i: Int64Array,
    out_j: Int64Array,
) -> int:
    """Every pair with key <= cut in row-major order (rows whose minimum cannot reach the cut are skipped)."""
    n = active.size
    count = 0
    for a in range(n - 1):
        if stored_min[a] <= cut + margin:
            i = active[a]
            for b in range(a + 1, n):
                j = active[b]
                if key_at(alpha, log_km1, s, r, pairs, starts, i, j) <= cut:
                    if count < out_i.size:
                        out_i[count] = i
                        out_j[count] = j
                    count += 1
    return count


@nb.njit(parallel=True, cache=True)
def _row_lowest(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    stored: Float64Array,
    low: float,
    margin: float,
) -> tuple[Float64Array, Int64Array]:
    """Per row within ``margin`` of ``low`` (the only rows that can hold the minimum): its
    exact lowest key and how many of its pairs have it (other rows: inf, 0).  Each row is
    one thread's, so the result is the same for any thread count."""
    n = active.size
    lowest = np.full(n, np.inf)
    count = np.zeros(n, dtype=np.int64)
    for a in nb.prange(n - 1):
        if stored[a] <= low + margin:
            i = active[a]
            row_low, row_count = np.inf, 0
            for b in range(a + 1, n):
                key = key_at(alpha, log_km1, s, r, pairs, starts, i, active[b])
                if key < row_low:
                    row_low, row_count = key, 0
                if key == row_low:
                    row_count += 1
            lowest[a], count[a] = row_low, row_count
    return lowest, count


@nb.njit(cache=True)
def _greedy_pick(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    row_low: Float64Array,
    row_count: Int64Array,
    u: float,
) -> tuple[int, int, float]:
    """The ``int(u * ties)``-th pair at the minimum key in row-major order: the full scan's
    greedy choice, found through the per-row counts and one scan of the row that holds it."""
    lowest = row_low.min()
    total = 0
    for a in range(active.size):
        if row_low[a] == lowest:
            total += row_count[a]
    target = min(int(u * total), total - 1)
    for a in range(active.size - 1):
        if row_low[a] != lowest:
            continue
        if target >= row_count[a]:
            target -= row_count[a]
            continue
        i = active[a]
        for b in range(a + 1, active.size):
            j = active[b]
            key = key_at(alpha, log_km1, s, r, pairs, starts, i, j)
            if key == lowest:
                if target == 0:
                    return i, j, key
                target -= 1
    return -1, -1, lowest


@nb.njit(cache=True)
def _after_merge(
    active: Int64Array,
    g: int,
    removed: int,
    s: Int64Array,
    r: Int64Array,
    merged_row: Int64Array,
    alpha: float,
    next_log_km1: float,
    margin: float,
    rows: RowArrays,
    sgn: float,
) -> None:
    """Row bookkeeping after slot ``removed`` merged into ``g`` (``active`` already excludes it).

    ``merged_row[m]``: the new co-firing of ``g`` with slot ``m``.  Reading it (and the stored
    pairs' ``best_c``) instead of the big array keeps this O(k) pass free of cache misses.
    Every row ``m < g`` has a new entry ``(m, g)``: its floor takes it in.
    """
    best, best_c, best_m, valid, floor = rows
    valid[g] = DIRTY
    floor[g] = -np.inf  # nothing is known of the merged group's row until it is rebuilt
    valid[removed] = DIRTY
    best[removed] = -1
    for a in range(active.size):
        m: int = active[a]
        if m >= g:
            break
        c_new = merged_row[m]
        f_new = sgn * pair_key(alpha, next_log_km1, s, r, c_new, m, g)
        floor[m] = min(floor[m], f_new - 0.5 * margin)
        star = best[m]
        if star in (g, removed) or star < 0:
            valid[m] = DIRTY
            continue
        if valid[m] == DIRTY:
            continue
        c_star = best_c[m]
        d = f_new - sgn * (alpha * best_m[m] - next_log_km1 * c_star)
        if d < -0.5 * margin:
            valid[m] = DIRTY
            continue
        dc = sgn * (c_star - c_new)
        if dc > 0:
            valid[m] = max(valid[m], next_log_km1 - (d + 0.5 * margin) / dc)
    # rows between g and removed lost their entry (m, removed): only matters if it was their stored pair
    for a in range(active.size):
        m = active[a]
        if g < m < removed and best[m] == removed:
            valid[m] = DIRTY


def key_margin(alpha: float, n_samples: int, n_features: int) -> float:
    """A bound far above the rounding error of any key: |key| <= scale = 2|alpha| N F + N log2 F,
    and a key (two products and a difference in float64) is off by at most ~4 * 2**-53 * scale,
    so 1e-11 * scale leaves a factor of over 10^4.  Not more: rows within the margin of the
    minimum are rescanned, and at 20k features 1e-9 * scale (~8 key units) took in 30x as
    many rows as the exact ties."""
    scale = 2.0 * abs(alpha) * n_samples * n_features + n_samples * max(math.log2(max(n_features, 2)), 1.0) + 1.0
    return 1e-11 * scale


class _Rows:
    """Per-row stored extremes and validity bounds for one sign (+1 minima, -1 maxima)."""

    def __init__(self, n_slots: int, sgn: float):
        self.arrays: RowArrays = (
            np.full(n_slots, -1, dtype=np.int64),  # best
            np.zeros(n_slots, dtype=np.int64),  # best_c
            np.zeros(n_slots, dtype=np.int64),  # best_m
            np.full(n_slots, DIRTY),  # valid
            np.full(n_slots, -np.inf),  # floor: unknown until the first rebuild
        )
        self.sgn = sgn


class RowExtremes:
    """Exact greedy and range selection over the merge state's slots.

    ``threshold == 0`` (greedy) keeps row minima only; ``threshold > 0`` also row maxima.
    """

    def __init__(self, n_slots: int, alpha: float, n_samples: int, threshold: float):
        self.alpha, self.threshold = alpha, threshold
        self.margin = key_margin(alpha, n_samples, n_slots)
        self.minima = _Rows(n_slots, 1.0)
        self.maxima = _Rows(n_slots, -1.0) if threshold > 0 else None
        self._out_i = np.empty(256, dtype=np.int64)
        self._out_j = np.empty(256, dtype=np.int64)

    def exact(
        self, rows: _Rows, active: Int64Array, s: Int64Array, r: Int64Array, pairs: IntArray, starts: Int64Array, log_km1: float
    ) -> tuple[Float64Array, float]:
        """Every row's stored sgn*key and the exact extreme key of ``rows``' sign."""
        stored, low = _stored(active, s, r, pairs, starts, self.alpha, log_km1, self.margin, rows.arrays, rows.sgn)
        return stored, rows.sgn * _exact_extreme(active, s, r, pairs, starts, self.alpha, log_km1, self.margin, stored, low, rows.sgn)

    def cut(
        self, active: Int64Array, s: Int64Array, r: Int64Array, pairs: IntArray, starts: Int64Array, log_km1: float
    ) -> tuple[Float64Array, float]:
        """Every row's stored minimum key and the range sampler's cut ``lo + threshold * (hi - lo)`` (exact)."""
        stored_min, lo = self.exact(self.minima, active, s, r, pairs, starts, log_km1)
        if self.maxima is None:
            return stored_min, lo
        _, hi = self.exact(self.maxima, active, s, r, pairs, starts, log_km1)
        return stored_min, lo + self.threshold * (hi - lo)

    def collect(
        self,
        active: Int64Array,
        s: Int64Array,
        r: Int64Array,
        pairs: IntArray,
        starts: Int64Array,
        log_km1: float,
        stored_min: Float64Array,
        cut: float,
    ) -> tuple[Int64Array, Int64Array]:
        """Every pair with key <= cut, in row-major order (the full scan's candidate list)."""
        while True:
            count = _collect_below(active, s, r, pairs, starts, self.alpha, log_km1, cut, stored_min, self.margin, self._out_i, self._out_j)
            if count <= self._out_i.size:
                return self._out_i[:count], self._out_j[:count]
            self._out_i = np.empty(2 * count, dtype=np.int64)
            self._out_j = np.empty(2 * count, dtype=np.int64)

    def greedy_pick(
        self, active: Int64Array, s: Int64Array, r: Int64Array, pairs: IntArray, starts: Int64Array, log_km1: float, u: float
    ) -> tuple[int, int, float]:
        """The greedy sampler's choice for ``u``: the full scan's pair among the ties at the minimum key."""
        stored, low = _stored(active, s, r, pairs, starts, self.alpha, log_km1, self.margin, self.minima.arrays, 1.0)
        row_low, row_count = _row_lowest(active, s, r, pairs, starts, self.alpha, log_km1, stored, low, self.margin)
        i, j, key = _greedy_pick(active, s, r, pairs, starts, self.alpha, log_km1, row_low, row_count, u)
        return int(i), int(j), float(key)

    def merged(
        self, active: Int64Array, g: int, removed: int, s: Int64Array, r: Int64Array, merged_row: Int64Array, next_log_km1: float
    ) -> None:
        """Update the rows after ``removed`` merged into ``g``; ``merged_row[m]`` is g's new co-firing with slot m."""
        for rows in (self.minima, self.maxima):
            if rows is not None:
                _after_merge(
                    active,
                    g,
                    removed,
                    s,
                    r,
                    merged_row,
                    self.alpha,
                    next_log_km1,
                    self.margin,
                    rows.arrays,
                    rows.sgn,
                )


@nb.njit(cache=True)
def _proposal_keys(
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    alpha: float,
    log_km1: float,
    rows: IntArray,
    offsets: Int64Array,
) -> Float64Array:
    """Keys of the proposed pairs (row position a, partner position a + 1 + offset)."""
    out = np.empty(rows.size)
    for t in range(rows.size):
        a: int = rows[t]
        # an Any-valued index (offsets[t]) makes numpy's stubs pick the fancy-index overload
        out[t] = key_at(alpha, log_km1, s, r, pairs, starts, active[a], active[a + 1 + offsets[t]])  # pyright: ignore[reportArgumentType]
    return out


def _propose(
    extremes: RowExtremes,
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    log_km1: float,
    mass: Float64Array | Int64Array,
    pairs_in_row: Int64Array,
    rng: np.random.Generator,
    batch: int,
) -> tuple[IntArray, Int64Array, Float64Array]:
    """``batch`` proposals: row positions drawn in proportion to ``mass`` (a cumulative sum
    over rows), a uniform pair within each row; their partner offsets and keys."""
    # mass[-1] is Any to numpy's stubs, which leaves searchsorted's overload (scalar or array) open
    rows = np.minimum(cast(IntArray, np.searchsorted(mass, rng.random(batch) * mass[-1], side="right")), active.size - 2)
    offsets = (rng.random(batch) * pairs_in_row[rows]).astype(np.int64)
    return rows, offsets, _proposal_keys(active, s, r, pairs, starts, extremes.alpha, log_km1, rows, offsets)


def extremes_mcmc_pick(
    extremes: RowExtremes,
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    log_km1: float,
    scale: float,
    rng: np.random.Generator,
    batch: int = 64,
) -> tuple[int, int, float]:
    """Exact draw with probability proportional to exp((min_key - key) * scale), by rejection.

    Row ``a`` is proposed with probability proportional to (pairs in the row) x (an upper
    bound on its weights, from its stored minimum less the margin); a uniform pair of the
    row is accepted with probability weight / bound.  Accepted pairs follow the target
    distribution exactly; the expected number of proposals is at most the row length.
    """
    stored_min, lo = extremes.exact(extremes.minima, active, s, r, pairs, starts, log_km1)
    n = active.size
    pairs_in_row = (n - 1 - np.arange(n)).astype(np.int64)
    with np.errstate(over="ignore"):
        row_bound = np.exp((lo - (stored_min - extremes.margin)) * scale)  # last row: stored inf -> 0
    mass = np.cumsum(row_bound * pairs_in_row)
    while True:
        rows, offsets, keys = _propose(extremes, active, s, r, pairs, starts, log_km1, mass, pairs_in_row, rng, batch)
        accept = rng.random(batch) * row_bound[rows] < np.exp((lo - keys) * scale)
        hit = np.flatnonzero(accept)
        if hit.size:
            t = hit[0]
            return int(active[rows[t]]), int(active[rows[t] + 1 + offsets[t]]), float(keys[t])


#: Below this many pairs in the rows that can reach the cut, the range draw scans them (cheaper than proposing).
RANGE_SCAN_PAIRS = 1 << 16


def extremes_range_pick(
    extremes: RowExtremes,
    active: Int64Array,
    s: Int64Array,
    r: Int64Array,
    pairs: IntArray,
    starts: Int64Array,
    log_km1: float,
    u: float,
    rng: np.random.Generator | None,
    scan_pairs: int | None = None,
    batch: int = 64,
) -> tuple[int, int, float]:
    """Exact uniform draw among the pairs with key <= cut (for greedy: the ties at the minimum).

    Without ``rng`` the candidates are listed in row-major order and ``u`` picks one: the
    full scan's choice for the same ``u``.  With it, proposals are uniform over the pairs of rows whose stored minimum can reach the cut (a
    superset of the candidates); a proposal is accepted when its key is <= cut, so accepted
    pairs are uniform over the candidates.  When those rows hold few pairs, or proposals keep
    missing (a budget of 1/16 of those pairs), the candidates are listed in row-major order
    and ``u`` picks one -- the full scan's rule, also uniform, and independent of the
    proposals that missed.
    """
    if extremes.maxima is None:  # greedy: the ties at the minimum, counted per row in parallel
        return extremes.greedy_pick(active, s, r, pairs, starts, log_km1, u)
    stored_min, cut = extremes.cut(active, s, r, pairs, starts, log_km1)
    n = active.size
    pairs_in_row = (n - 1 - np.arange(n)).astype(np.int64)
    mass = np.cumsum(np.where(stored_min <= cut + extremes.margin, pairs_in_row, 0))
    total = int(mass[-1])
    if rng is not None and total > (RANGE_SCAN_PAIRS if scan_pairs is None else scan_pairs):
        for _ in range(max(1, total // (16 * batch))):
            rows, offsets, keys = _propose(extremes, active, s, r, pairs, starts, log_km1, mass, pairs_in_row, rng, batch)
            hit = np.flatnonzero(keys <= cut)
            if hit.size:
                t = hit[0]
                return int(active[rows[t]]), int(active[rows[t] + 1 + offsets[t]]), float(keys[t])
    cand_i, cand_j = extremes.collect(active, s, r, pairs, starts, log_km1, stored_min, cut)
    pick = min(int(u * cand_i.size), cand_i.size - 1)
    i, j = int(cand_i[pick]), int(cand_j[pick])
    return i, j, float(key_at(extremes.alpha, log_km1, s, r, pairs, starts, i, j))

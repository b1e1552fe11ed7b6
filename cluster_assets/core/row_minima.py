"""Exact greedy pair selection without scanning all k^2 pairs every step.

The merge key of a pair is ``key_ij(L) = alpha * M_ij - L * c_ij`` with
``L = log2(k - 1)``; between merges only ``L`` changes, and it only decreases.  Each
row ``i`` (pairs ``i < j`` over active slots) stores its argmin ``best[i]`` and the
smallest ``L`` for which that argmin is still within ``margin / 2`` of the row's true
minimum (lines with a smaller slope ``c`` overtake it as ``L`` falls).  A step then:

1. rebuilds rows whose validity ran out (O(k) each), and evaluates every row's stored
   argmin (O(k));
2. fully rescans only the rows whose stored minimum is within ``margin`` of the global
   one, finds the exact floating-point minimum among them and every pair that ties it,
   in row-major order -- the same set, in the same order, as a full scan;
3. after the merge, marks for rebuild the merged row and rows whose argmin was one of
   the merged groups, and checks every other row's new entry against its argmin (O(1)).

``margin`` is many orders of magnitude above floating-point rounding of the keys, so
the chosen pair is identical to the full-scan sampler's (tests compare them).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

DIRTY = np.inf  # validity bound that forces a rebuild at the next step


@nb.njit(cache=True, inline="always")
def _key(alpha, log_km1, s, r, cof, i, j):
    c = cof[i, j]
    return alpha * (s[i] * r[j] + s[j] * r[i] - c * (r[i] + r[j])) - log_km1 * c


@nb.njit(cache=True)
def _rebuild(i, active, start, s, r, cof, alpha, log_km1, margin, best, valid):
    """Argmin of row i (pairs with active slots after i) at log_km1, and its validity bound."""
    n = active.size
    best_j, best_key = -1, np.inf
    for b in range(start, n):
        j = active[b]
        key = _key(alpha, log_km1, s, r, cof, i, j)
        if key < best_key:
            best_key, best_j = key, j
    best[i] = best_j
    bound = -np.inf
    if best_j >= 0:
        c_star = cof[i, best_j]
        for b in range(start, n):
            j = active[b]
            dc = c_star - cof[i, j]
            if dc > 0:  # line j rises more slowly as L falls: it overtakes at this L
                d0 = _key(alpha, log_km1, s, r, cof, i, j) - best_key
                cross = log_km1 - (d0 + 0.5 * margin) / dc
                if cross > bound:
                    bound = cross
    valid[i] = bound


@nb.njit(cache=True)
def greedy_candidates(active, s, r, cof, alpha, log_km1, margin, best, valid, out_i, out_j):
    """Fill out_i/out_j with every pair whose key equals the exact minimum, row-major order.

    Returns (number of ties, the minimum key).  ``best``/``valid`` are updated in place.
    """
    n = active.size
    stored = np.empty(n)
    lo = np.inf
    for a in range(n - 1):
        i = active[a]
        if log_km1 < valid[i]:
            _rebuild(i, active, a + 1, s, r, cof, alpha, log_km1, margin, best, valid)
        stored[a] = _key(alpha, log_km1, s, r, cof, i, best[i]) if best[i] >= 0 else np.inf
        if stored[a] < lo:
            lo = stored[a]
    # exact minimum over the rows that can hold it
    exact = np.inf
    for a in range(n - 1):
        if stored[a] <= lo + margin:
            i = active[a]
            for b in range(a + 1, n):
                key = _key(alpha, log_km1, s, r, cof, i, active[b])
                if key < exact:
                    exact = key
    count = 0
    for a in range(n - 1):
        if stored[a] <= lo + margin:
            i = active[a]
            for b in range(a + 1, n):
                j = active[b]
                if _key(alpha, log_km1, s, r, cof, i, j) == exact:
                    if count < out_i.size:
                        out_i[count] = i
                        out_j[count] = j
                    count += 1
    return count, exact


@nb.njit(cache=True)
def after_merge(active, g, removed, s, r, cof, alpha, next_log_km1, margin, best, valid):
    """Update row bookkeeping after slot ``removed`` merged into ``g`` (``active`` already
    excludes ``removed``); ``next_log_km1`` is the L of the next step."""
    valid[g] = DIRTY
    valid[removed] = DIRTY
    best[removed] = -1
    for a in range(active.size):
        m = active[a]
        if m >= g:
            break
        if best[m] == g or best[m] == removed or best[m] < 0:
            valid[m] = DIRTY
            continue
        if valid[m] == DIRTY:
            continue
        star = best[m]
        d = _key(alpha, next_log_km1, s, r, cof, m, g) - _key(alpha, next_log_km1, s, r, cof, m, star)
        if d < -0.5 * margin:
            valid[m] = DIRTY
            continue
        dc = cof[m, star] - cof[m, g]
        if dc > 0:
            cross = next_log_km1 - (d + 0.5 * margin) / dc
            if cross > valid[m]:
                valid[m] = cross
    # rows between g and removed lost their entry (m, removed): only matters if it was their argmin
    for a in range(active.size):
        m = active[a]
        if m > g and m < removed and best[m] == removed:
            valid[m] = DIRTY


def key_margin(alpha: float, n_samples: int, n_features: int) -> float:
    """A bound far above the rounding error of any key (|key| <= 2|alpha| N F + N log2 F)."""
    scale = 2.0 * abs(alpha) * n_samples * n_features + n_samples * max(math.log2(max(n_features, 2)), 1.0) + 1.0
    return 1e-9 * scale


class RowMinima:
    """Per-row argmins and validity bounds over the merge state's slots."""

    def __init__(self, n_slots: int, alpha: float, n_samples: int):
        self.best = np.full(n_slots, -1, dtype=np.int64)
        self.valid = np.full(n_slots, DIRTY)
        self.alpha = alpha
        self.margin = key_margin(alpha, n_samples, n_slots)
        self._out_i = np.empty(256, dtype=np.int64)
        self._out_j = np.empty(256, dtype=np.int64)

    def ties(self, active, s, r, cof, log_km1) -> tuple[np.ndarray, np.ndarray, float]:
        count, key = greedy_candidates(active, s, r, cof, self.alpha, log_km1, self.margin, self.best, self.valid, self._out_i, self._out_j)
        if count > self._out_i.size:  # more ties than the buffer: grow it and collect again (rows are rebuilt already)
            self._out_i = np.empty(2 * count, dtype=np.int64)
            self._out_j = np.empty(2 * count, dtype=np.int64)
            count, key = greedy_candidates(active, s, r, cof, self.alpha, log_km1, self.margin, self.best, self.valid, self._out_i, self._out_j)
        return self._out_i[:count], self._out_j[:count], key

    def merged(self, active, g, removed, s, r, cof, next_log_km1) -> None:
        after_merge(active, g, removed, s, r, cof, self.alpha, next_log_km1, self.margin, self.best, self.valid)

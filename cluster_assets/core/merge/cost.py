"""The merge key of a pair of groups (see :mod:`cluster_assets.core.merge.state` for its derivation)."""

from __future__ import annotations

import numba as nb

from cluster_assets.core.arrays import Int64Array, IntArray


@nb.njit(cache=True, inline="always")
def pair_key(alpha: float, log_km1: float, s: Int64Array, r: Int64Array, c: int, i: int, j: int) -> float:
    """``alpha * M_ij - log2(k-1) * c_ij`` with ``M_ij = s_i r_j + s_j r_i - c_ij (r_i + r_j)`` (exact integer)."""
    m = s[i] * r[j] + s[j] * r[i] - c * (r[i] + r[j])
    return alpha * m - log_km1 * c


@nb.njit(cache=True, inline="always")
def key_at(alpha: float, log_km1: float, s: Int64Array, r: Int64Array, pairs: IntArray, starts: Int64Array, i: int, j: int) -> float:
    """:func:`pair_key` of slots ``i < j``, their co-firing read from the condensed pairs (:meth:`~cluster_assets.core.coactivation.CoFiring.condensed`)."""
    return pair_key(alpha, log_km1, s, r, int(pairs[starts[i] + j]), i, j)

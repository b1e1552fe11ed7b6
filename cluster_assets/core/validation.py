"""Invariants of stage outputs, as pure functions returning a list of problems (empty = valid)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cluster_assets.core.coactivation import CoFiring
from cluster_assets.core.history import MergeHistory
from cluster_assets.core.params import SparseMatrix


def coactivation_problems(cofiring: CoFiring, activity: SparseMatrix, n_samples_checked: int = 200, seed: int = 0) -> list[str]:
    """Firing counts = membership counts, the pairs a strict upper triangle in canonical form, and
    random pairs and random stored entries equal to a direct recount."""
    problems: list[str] = []
    csc = sp.csc_array(activity, dtype=bool)
    n = csc.shape[1]
    if cofiring.n_features != n:
        return [f"counts of {cofiring.n_features} features do not match {n} features"]
    bad = np.flatnonzero(cofiring.counts != np.diff(csc.indptr))
    if bad.size:
        problems.append(f"firing counts differ from membership counts at {bad.size} features (first: {bad[:5].tolist()})")
    pairs = cofiring.pairs
    rows = np.flatnonzero(np.diff(pairs.indptr))
    if not pairs.has_canonical_format or (pairs.indices[pairs.indptr[rows]] <= rows).any() or (pairs.data <= 0).any():
        problems.append("pairs are not a strict upper triangle with sorted rows and positive stored counts")
        return problems
    rng = np.random.default_rng(seed)
    # random pairs (most never co-fire in a wide SAE) and random stored ones
    stored = rng.integers(0, pairs.nnz, size=min(n_samples_checked, pairs.nnz))
    stored_pairs = np.column_stack([np.searchsorted(pairs.indptr, stored, side="right") - 1, pairs.indices[stored]])
    for a, b in np.concatenate([rng.integers(0, n, size=(min(n_samples_checked, n * n), 2)), stored_pairs]):
        col_a = csc.indices[csc.indptr[a] : csc.indptr[a + 1]]
        col_b = csc.indices[csc.indptr[b] : csc.indptr[b + 1]]
        direct = np.intersect1d(col_a, col_b, assume_unique=True).size
        if cofiring.at(int(a), int(b)) != direct:
            problems.append(f"entry ({a}, {b}) is {cofiring.at(int(a), int(b))}, a direct recount gives {direct}")
            break
    return problems


def history_problems(history: MergeHistory) -> list[str]:
    """k drops by one per step, pairs name live groups, MDL finite, sizes consistent."""
    problems: list[str] = []
    n = history.n_features
    live = {i: 1 for i in range(n)}
    for s, (a, b) in enumerate(history.pairs):
        a, b = int(a), int(b)
        if a == b or a not in live or b not in live:
            problems.append(f"step {s}: pair ({a}, {b}) does not name two live groups")
            break
        live[n + s] = live.pop(a) + live.pop(b)
        if history.sizes[s] != live[n + s]:
            problems.append(f"step {s}: recorded size {history.sizes[s]} but the pair has {live[n + s]} features")
            break
        if len(live) != n - s - 1:
            problems.append(f"step {s}: {len(live)} groups, expected {n - s - 1}")
            break
    if history.mdl.shape != (history.n_merges + 1,) or not np.all(np.isfinite(history.mdl)):
        problems.append("MDL curve has the wrong length or non-finite values")
    if not np.all(np.isfinite(history.costs)):
        problems.append("non-finite merge costs")
    return problems


def partition_problems(labels: np.ndarray, feature_ids: np.ndarray, kept_ids: np.ndarray) -> list[str]:
    """Every kept feature in exactly one cluster (``-1``, density-clustering noise, counts as one), nothing else clustered."""
    problems: list[str] = []
    ids, counts = np.unique(feature_ids, return_counts=True)
    if (counts > 1).any():
        problems.append(f"{int((counts > 1).sum())} features appear in more than one cluster")
    missing = np.setdiff1d(kept_ids, ids)
    extra = np.setdiff1d(ids, kept_ids)
    if missing.size:
        problems.append(f"{missing.size} kept features are in no cluster (first: {missing[:5].tolist()})")
    if extra.size:
        problems.append(f"{extra.size} clustered features were not kept (first: {extra[:5].tolist()})")
    if len(labels) != len(feature_ids) or (len(labels) and np.asarray(labels).min() < -1):
        problems.append("labels do not align with features")
    return problems

"""Ensembles of merge runs and permutation-invariant distances between clusterings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from cluster_assets.core.coactivation import coactivation
from cluster_assets.core.comparison import contingency
from cluster_assets.core.history import MergeHistory
from cluster_assets.core.merge import MergeConfig, run_merge
from cluster_assets.core.params import SparseMatrix


def run_ensemble(activity: SparseMatrix, config: MergeConfig, seeds: Sequence[int]) -> list[MergeHistory]:
    """One history per seed on the same input (the coactivation is computed once)."""
    cofiring = coactivation(activity)
    return [run_merge(activity, replace(config, seed=int(s)), cofiring=cofiring) for s in seeds]


def hamming_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of items whose label differs after the best one-to-one matching of labels
    (Hungarian matching on the contingency table)."""
    table = contingency(a, b)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return 1.0 - table[rows, cols].sum() / max(len(a), 1)


def comembership_disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of item pairs that are together in one clustering and apart in the other."""
    table = contingency(a, b)
    n = int(table.sum())
    pairs = n * (n - 1) // 2
    if pairs == 0:
        return 0.0
    both = int((table * (table - 1) // 2).sum())
    in_a = int((table.sum(axis=1) * (table.sum(axis=1) - 1) // 2).sum())
    in_b = int((table.sum(axis=0) * (table.sum(axis=0) - 1) // 2).sum())
    return (in_a + in_b - 2 * both) / pairs


def ensemble_distances(histories: Sequence[MergeHistory], k: int, metric: str = "hamming") -> np.ndarray:
    """Symmetric matrix of pairwise distances between the histories' clusterings at ``k``."""
    fn = {"hamming": hamming_distance, "comembership": comembership_disagreement}.get(metric)
    if fn is None:
        raise ValueError(f"unknown metric {metric!r}; expected 'hamming' or 'comembership'")
    labels = [h.labels_at(k) for h in histories]
    out = np.zeros((len(labels), len(labels)))
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            out[i, j] = out[j, i] = fn(labels[i], labels[j])
    return out

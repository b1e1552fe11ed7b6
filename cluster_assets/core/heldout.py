"""Description length of a clustering on samples it never saw (the quality measure).

The MDL of a grouping (:mod:`cluster_assets.core.mdl`) counts, for each group, the samples where
any member is active.  A clustering found on one
sample is scored on another (held out: same dataset, or another dataset for transfer) against
two references on the same features: every feature alone, and random partitions with the same
cluster sizes.  Features the baseline leaves as noise (label ``-1``) count as singletons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from cluster_assets.core.arrays import Int64Array, IntArray
from cluster_assets.core.mdl import description_length_bits


@nb.njit(cache=True)
def _group_counts(indptr: IntArray, indices: IntArray, group_of: IntArray, k: int) -> Int64Array:
    counts = np.zeros(k, np.int64)
    stamp = np.full(k, -1, np.int64)
    for t in range(indptr.size - 1):
        for q in range(indptr[t], indptr[t + 1]):
            g = group_of[indices[q]]
            if stamp[g] != t:
                stamp[g] = t
                counts[g] += 1
    return counts


def with_singletons(labels: np.ndarray) -> np.ndarray:
    """Labels 0..k-1 where each noise feature (-1) is a group of its own."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    _, canonical = np.unique(labels, return_inverse=True)
    return canonical.ravel()


def description_length(activity: sp.csr_array, labels: np.ndarray, alpha: float) -> float:
    """MDL (bits per sample) of the grouping ``labels`` (one per column of ``activity``, samples x features)."""
    csr = sp.csr_array(activity)
    groups = with_singletons(labels)
    if groups.size != csr.shape[1]:
        raise ValueError(f"{groups.size} labels for {csr.shape[1]} features")
    k = int(groups.max(initial=-1)) + 1
    counts = _group_counts(csr.indptr, csr.indices, groups, k)
    return description_length_bits(counts, np.bincount(groups, minlength=k).astype(np.int64), int(csr.shape[0]), alpha)


@dataclass(frozen=True)
class HeldoutScore:
    """Bits per held-out sample of a clustering and of its two references (lower is better)."""

    mdl: float
    singletons: float  # every feature alone
    random: float  # random partitions with the same cluster sizes (mean)
    random_std: float
    samples: int

    @property
    def gain_vs_singletons(self) -> float:
        """Fraction of the singletons' description length saved (0: no better than features alone)."""
        return 1.0 - self.mdl / self.singletons if self.singletons > 0 else 0.0

    @property
    def gain_vs_random(self) -> float:
        return 1.0 - self.mdl / self.random if self.random > 0 else 0.0


def heldout_score(activity: sp.csr_array, labels: np.ndarray, alpha: float, n_random: int = 5, seed: int = 0) -> HeldoutScore:
    """Score ``labels`` on held-out ``activity`` (samples x the clustering's features)."""
    groups = with_singletons(labels)
    rng = np.random.default_rng(seed)
    randoms = [description_length(activity, rng.permutation(groups), alpha) for _ in range(n_random)]
    return HeldoutScore(
        mdl=description_length(activity, groups, alpha),
        singletons=description_length(activity, np.arange(groups.size), alpha),
        random=float(np.mean(randoms)),
        random_std=float(np.std(randoms)),
        samples=int(activity.shape[0]),
    )

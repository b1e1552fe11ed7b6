"""Deliberately simple dense references: recount everything from scratch, float64, the
design document's formulas written out literally.  Slow and obviously correct."""

from __future__ import annotations

import math

import numpy as np


def dense_coactivation(x: np.ndarray) -> np.ndarray:
    xi = (np.asarray(x) != 0).astype(np.int64)
    return xi.T @ xi


def group_activity(x: np.ndarray, groups: list[frozenset]) -> np.ndarray:
    """samples x groups bool: a group is active where any member feature is."""
    x = np.asarray(x) != 0
    return np.stack([x[:, sorted(g)].any(axis=1) for g in groups], axis=1)


def mdl(x: np.ndarray, groups: list[frozenset], alpha: float) -> float:
    act = group_activity(x, groups)
    n, k = act.shape
    return sum(act[:, i].sum() / n * (math.log2(k) + alpha * len(g)) for i, g in enumerate(groups))


def cost_matrix(x: np.ndarray, groups: list[frozenset], alpha: float) -> np.ndarray:
    """The design's cost_ij for every pair (upper triangle; NaN elsewhere)."""
    act = group_activity(x, groups).astype(np.float64)
    n, k = act.shape
    p = act.sum(axis=0) / n
    pij = (act.T @ act) / n
    S = p.sum()
    r = np.array([len(g) for g in groups], dtype=np.float64)
    out = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i + 1, k):
            out[i, j] = (
                (S - p[i] - p[j]) * math.log2((k - 1) / k)
                + (p[i] + p[j] - pij[i, j]) * math.log2(k - 1)
                - (p[i] + p[j]) * math.log2(k)
                + alpha * ((p[i] + p[j] - pij[i, j]) * (r[i] + r[j]) - p[i] * r[i] - p[j] * r[j])
            )
    return out


def replay_groups(n_features: int, pairs: np.ndarray):
    """Yield the list of groups (frozensets of leaf columns) before each merge, then the last."""
    clusters = {i: frozenset([i]) for i in range(n_features)}
    for s, (a, b) in enumerate(pairs):
        yield clusters, int(a), int(b)
        clusters = dict(clusters)
        clusters[n_features + s] = clusters.pop(int(a)) | clusters.pop(int(b))
    yield clusters, None, None


def random_activity(rng: np.random.Generator, n_samples: int, n_features: int, density: float) -> np.ndarray:
    """Bool samples x features with varied per-feature rates and some correlated pairs."""
    rates = rng.uniform(0.2, 1.8, size=n_features) * density
    x = rng.random((n_samples, n_features)) < rates
    for _ in range(n_features // 4):
        a, b = rng.integers(0, n_features, size=2)
        x[:, b] |= x[:, a] & (rng.random(n_samples) < 0.7)
    return x

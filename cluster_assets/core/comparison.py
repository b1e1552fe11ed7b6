"""Comparing clusterings of the same SAE features (across datasets or sweep points).

Every SAE feature has one identity across datasets, so two clusterings are compared on
the features both kept.  Labels are arbitrary integers; ``-1`` (density-clustering
noise) is treated as an ordinary label, as scikit-learn's metrics do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of items with label pair (a, b): dense (n_labels_a, n_labels_b) int64."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("label arrays must be 1-D and of equal length")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max(initial=-1) + 1, bi.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)
    return table


def _comb2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    return x * (x - 1) // 2


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Hubert-Arabie adjusted Rand index (equals ``sklearn.metrics.adjusted_rand_score``)."""
    table = contingency(a, b)
    n = int(table.sum())
    if n < 2:
        return 1.0
    sum_ij = int(_comb2(table).sum())
    sum_a = int(_comb2(table.sum(axis=1)).sum())
    sum_b = int(_comb2(table.sum(axis=0)).sum())
    total = n * (n - 1) // 2
    expected = sum_a * sum_b / total
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:  # both trivial (one cluster, or all singletons): identical up to labels
        return 1.0
    return float((sum_ij - expected) / (maximum - expected))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """NMI with the arithmetic-mean normaliser (equals ``sklearn.metrics.normalized_mutual_info_score``)."""
    table = contingency(a, b).astype(np.float64)
    n = table.sum()
    if n == 0:
        return 1.0
    ha, hb = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    if ha == 0 and hb == 0:
        return 1.0
    rows, cols = np.nonzero(table)
    pij = table[rows, cols] / n
    pa = table.sum(axis=1)[rows] / n
    pb = table.sum(axis=0)[cols] / n
    mi = float((pij * (np.log(pij) - np.log(pa) - np.log(pb))).sum())
    mi = max(mi, 0.0)
    return mi / max((ha + hb) / 2, np.finfo(float).eps)


def common_labels(
    ids_a: np.ndarray, labels_a: np.ndarray, ids_b: np.ndarray, labels_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(common feature ids, labels in a, labels in b) on the features both clusterings hold."""
    common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    return common, np.asarray(labels_a)[ia], np.asarray(labels_b)[ib]


@dataclass
class ClusterMatch:
    """For each cluster of ``a``: its best match in ``b`` by Jaccard of member feature sets."""

    cluster: np.ndarray  # cluster labels of a
    best: np.ndarray  # best-matching label in b (or -2 when b has no overlap)
    jaccard: np.ndarray  # Jaccard of the two member sets (full sets, not only common features)


def best_matches(ids_a: np.ndarray, labels_a: np.ndarray, ids_b: np.ndarray, labels_b: np.ndarray, skip_noise: bool = True) -> ClusterMatch:
    """Each cluster of ``a``'s best match in ``b`` by Jaccard of the full member sets (ties: the
    lower label of ``b``; ``-2`` when no member of the cluster is clustered in ``b``)."""
    ids_a, labels_a, ids_b, labels_b = (np.asarray(x) for x in (ids_a, labels_a, ids_b, labels_b))
    clusters_a, size_a = np.unique(labels_a, return_counts=True)
    if skip_noise:
        size_a, clusters_a = size_a[clusters_a >= 0], clusters_a[clusters_a >= 0]
    values_b, size_b = np.unique(labels_b, return_counts=True)
    _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    x, y = labels_a[ia], labels_b[ib]
    keep = (x >= 0) & (y >= 0) if skip_noise else np.ones(x.size, bool)
    pairs, inter = (
        np.unique(np.stack([x[keep], y[keep]]), axis=1, return_counts=True)
        if keep.any()
        else (np.zeros((2, 0), np.int64), np.zeros(0, np.int64))
    )
    pa, pb = pairs[0], pairs[1]
    jac = inter / (size_a[np.searchsorted(clusters_a, pa)] + size_b[np.searchsorted(values_b, pb)] - inter) if pa.size else np.zeros(0)
    order = np.lexsort((pb, -jac, pa))
    first = order[np.concatenate([[True], pa[order][1:] != pa[order][:-1]])] if order.size else order
    best = np.full(clusters_a.size, -2, dtype=np.int64)
    jaccard = np.zeros(clusters_a.size)
    at = cast(npt.NDArray[np.intp], np.searchsorted(clusters_a, pa[first]))  # pa is Any: searchsorted's overload stays open
    best[at], jaccard[at] = pb[first], jac[first]
    return ClusterMatch(clusters_a, best, jaccard)


def pair_metrics(
    ids_a: np.ndarray, labels_a: np.ndarray, ids_b: np.ndarray, labels_b: np.ndarray, min_jaccard: float = 0.5
) -> dict[str, float]:
    """Agreement of two clusterings of (partly) the same features: ARI and NMI on the common
    features; the mean best-match Jaccard of the multi-feature clusters, both directions; and
    the fraction of those clusters matched with Jaccard >= ``min_jaccard`` (stable)."""
    common, la, lb = common_labels(ids_a, labels_a, ids_b, labels_b)
    out = {"common": float(common.size), "ari": float("nan"), "nmi": float("nan")}
    if common.size:
        out["ari"], out["nmi"] = adjusted_rand_index(la, lb), normalized_mutual_info(la, lb)
    jac: list[np.ndarray] = []
    stable: list[np.ndarray] = []
    for ia, la_, ib, lb_ in ((ids_a, labels_a, ids_b, labels_b), (ids_b, labels_b, ids_a, labels_a)):
        m = best_matches(ia, la_, ib, lb_)
        sizes = np.unique(np.asarray(la_)[np.asarray(la_) >= 0], return_counts=True)[1]
        multi = sizes > 1
        jac.append(m.jaccard[multi])
        stable.append(m.jaccard[multi] >= min_jaccard)
    both = np.concatenate(jac)
    out["jaccard"] = float(both.mean()) if both.size else float("nan")
    out["stable"] = float(np.concatenate(stable).mean()) if both.size else float("nan")
    return out


def stable_clusters(
    reference: str, clusterings: dict[str, tuple[np.ndarray, np.ndarray]], min_jaccard: float = 0.5, min_size: int = 1
) -> dict[int, dict[str, tuple[int, float]]]:
    """Clusters of ``reference`` (of at least ``min_size`` features) matched with Jaccard >=
    ``min_jaccard`` in every other clustering.

    ``clusterings`` maps a name to (feature ids, labels).  Returns
    {reference cluster: {name: (matched cluster, jaccard)}}.
    """
    ids_r, labels_r = clusterings[reference]
    others = [n for n in clusterings if n != reference]
    matches = {n: best_matches(ids_r, labels_r, *clusterings[n]) for n in others}
    clusters, sizes = np.unique(labels_r[labels_r >= 0], return_counts=True)
    out: dict[int, dict[str, tuple[int, float]]] = {}
    for idx, (c, size) in enumerate(zip(clusters, sizes)):
        if size >= min_size and all(matches[n].jaccard[idx] >= min_jaccard for n in others):
            out[int(c)] = {n: (int(matches[n].best[idx]), float(matches[n].jaccard[idx])) for n in others}
    return out

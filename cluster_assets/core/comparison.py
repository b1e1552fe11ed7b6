"""Comparing clusterings of the same SAE features (across datasets or sweep points).

Every SAE feature has one identity across datasets, so two clusterings are compared on
the features both kept.  Labels are arbitrary integers; ``-1`` (density-clustering
noise) is treated as an ordinary label, as scikit-learn's metrics do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cluster_assets.core.ensemble import contingency


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
    at = np.searchsorted(clusters_a, pa[first])
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
    jac, stable = [], []
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
    reference: str, clusterings: dict[str, tuple[np.ndarray, np.ndarray]], min_jaccard: float = 0.5
) -> dict[int, dict[str, tuple[int, float]]]:
    """Clusters of ``reference`` matched with Jaccard >= ``min_jaccard`` in every other clustering.

    ``clusterings`` maps a name to (feature ids, labels).  Returns
    {reference cluster: {name: (matched cluster, jaccard)}}.
    """
    ids_r, labels_r = clusterings[reference]
    others = [n for n in clusterings if n != reference]
    matches = {n: best_matches(ids_r, labels_r, *clusterings[n]) for n in others}
    out = {}
    for idx, c in enumerate(np.unique(labels_r[labels_r >= 0])):
        if all(matches[n].jaccard[idx] >= min_jaccard for n in others):
            out[int(c)] = {n: (int(matches[n].best[idx]), float(matches[n].jaccard[idx])) for n in others}
    return out


def compare_clusterings(clusterings: dict[str, tuple[np.ndarray, np.ndarray]], min_jaccard: float = 0.5) -> dict[str, dict[str, list]]:
    """All-pairs comparison of named clusterings (feature ids, labels).

    Returns column dicts: ``pairs`` (features in each, common, ARI, NMI on the common
    features), ``matches`` (each cluster's best match in each other clustering),
    ``stable`` (clusters of the first clustering matched with Jaccard >= ``min_jaccard``
    in every other) and ``specific`` (clusters with no such match in any other).
    """
    names = list(clusterings)
    pairs: dict[str, list] = {k: [] for k in ("a", "b", "features_a", "features_b", "common", "ari", "nmi")}
    matches: dict[str, list] = {k: [] for k in ("name", "cluster", "size", "other", "best", "jaccard")}
    for i, a in enumerate(names):
        ids_a, la = clusterings[a]
        for b in names[i + 1 :]:
            ids_b, lb = clusterings[b]
            common, ca, cb = common_labels(ids_a, la, ids_b, lb)
            for key, value in zip(
                pairs,
                (
                    a,
                    b,
                    len(ids_a),
                    len(ids_b),
                    len(common),
                    adjusted_rand_index(ca, cb) if len(common) else float("nan"),
                    normalized_mutual_info(ca, cb) if len(common) else float("nan"),
                ),
            ):
                pairs[key].append(value)
        for b in names:
            if b == a:
                continue
            m = best_matches(ids_a, la, *clusterings[b])
            sizes = dict(zip(*np.unique(la, return_counts=True)))
            for c, best, jac in zip(m.cluster, m.best, m.jaccard):
                for key, value in zip(matches, (a, int(c), int(sizes[c]), b, int(best), float(jac))):
                    matches[key].append(value)
    stable: dict[str, list] = {"reference": [], "cluster": [], "matched": []}
    specific: dict[str, list] = {"name": [], "cluster": [], "size": [], "best_jaccard": []}
    if len(names) >= 2:
        for c, matched in stable_clusters(names[0], clusterings, min_jaccard).items():
            stable["reference"].append(names[0])
            stable["cluster"].append(c)
            stable["matched"].append({n: {"cluster": mc, "jaccard": j} for n, (mc, j) in matched.items()})
        best_by_cluster: dict[tuple[str, int], tuple[int, float]] = {}
        for name, c, size, jac in zip(matches["name"], matches["cluster"], matches["size"], matches["jaccard"]):
            prev = best_by_cluster.get((name, c), (size, 0.0))
            best_by_cluster[(name, c)] = (size, max(prev[1], jac))
        for (name, c), (size, jac) in best_by_cluster.items():
            if jac < min_jaccard and size > 1:
                for key, value in zip(specific, (name, c, size, jac)):
                    specific[key].append(value)
    return {"pairs": pairs, "matches": matches, "stable": stable, "specific": specific}

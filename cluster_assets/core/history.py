"""The record of a merge run and its scipy-compatible hierarchy.

Interchange format: a scipy linkage matrix ``Z`` of shape ``(n - 1, 4)`` with rows
``[id_a, id_b, height, size]``; leaves are ``0 .. n-1`` (feature columns) and the group
formed at merge step ``s`` (0-based) has id ``n + s``.  The height of a real merge is
its 1-based step number, so heights are monotone and a cut into ``k`` clusters
(``fcluster(Z, k, "maxclust")``) reproduces the partition after ``n - k`` merges.  A run
that stopped early (at three groups, or after ``iters``) is completed with synthetic
rows above the last real height that join the remaining groups in id order; only
``labels_at(k)`` for ``k >= n - n_merges`` reflects real merges.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import DisjointSet


@dataclass
class MergeHistory:
    """Merged pairs (linkage ids), their costs (bits/sample), MDL after each step.

    pairs: (m, 2) int64 linkage ids merged at each step, smaller id first.
    costs: (m,) float64 cost of each chosen merge = MDL after - MDL before.
    mdl: (m + 1,) float64 MDL of the grouping before any merge and after each step.
    sizes, counts: (m,) features in / samples active for the group formed at each step.
    feature_ids: (n,) the SAE feature id of each leaf.
    """

    n_features: int
    n_samples: int
    pairs: np.ndarray
    costs: np.ndarray
    mdl: np.ndarray
    sizes: np.ndarray
    counts: np.ndarray
    feature_ids: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict[str, Any])

    def __post_init__(self) -> None:
        if self.feature_ids is None:
            self.feature_ids = np.arange(self.n_features, dtype=np.int64)
        self.feature_ids = np.asarray(self.feature_ids, dtype=np.int64)

    @property
    def n_merges(self) -> int:
        return int(self.pairs.shape[0])

    @property
    def ks(self) -> np.ndarray:
        """Number of groups at each entry of ``mdl``."""
        return self.n_features - np.arange(self.n_merges + 1)

    def best_k(self) -> int:
        """The number of groups at which the MDL is smallest (first minimum)."""
        return int(self.ks[int(np.argmin(self.mdl))])

    @property
    def linkage(self) -> np.ndarray:
        n, m = self.n_features, self.n_merges
        z = np.zeros((max(n - 1, 0), 4), dtype=np.float64)
        size = {i: 1 for i in range(n)}
        for s, (a, b) in enumerate(self.pairs):
            size[n + s] = size.pop(int(a)) + size.pop(int(b))
            z[s] = a, b, s + 1, size[n + s]
        remaining = sorted(size)
        for s in range(m, n - 1):
            a, b = remaining[0], remaining[1]
            size[n + s] = size.pop(a) + size.pop(b)
            z[s] = a, b, s + 1, size[n + s]
            remaining = sorted(size)
        return z

    def labels_at(self, k: int) -> np.ndarray:
        """Group label (0 .. k-1, numbered by first member) of each feature with ``k`` groups."""
        lowest = self.n_features - self.n_merges
        if not (lowest <= k <= self.n_features):
            raise ValueError(f"k must be between {lowest} and {self.n_features} for this history, got {k}")
        ds = DisjointSet(range(self.n_features + self.n_merges))
        for s in range(self.n_features - k):
            a, b = self.pairs[s]
            ds.merge(int(a), self.n_features + s)
            ds.merge(int(b), self.n_features + s)
        return canonical_labels(np.array([ds[i] for i in range(self.n_features)]))

    # the arrays of the on-disk format (storage.formats), in one place -----------------
    def to_arrays(self) -> dict[str, Any]:
        """Every field as an array (the linkage matrix included, for scipy users of the file)."""
        return {
            "n_features": np.int64(self.n_features),
            "n_samples": np.int64(self.n_samples),
            "pairs": self.pairs,
            "costs": self.costs,
            "mdl": self.mdl,
            "sizes": self.sizes,
            "counts": self.counts,
            "feature_ids": self.feature_ids,
            "linkage": self.linkage,
            "config": np.array(json.dumps(self.config)),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> MergeHistory:
        """Inverse of :meth:`to_arrays` (``arrays``: any mapping, e.g. an open ``.npz``)."""
        return cls(
            n_features=int(arrays["n_features"]),
            n_samples=int(arrays["n_samples"]),
            pairs=arrays["pairs"],
            costs=arrays["costs"],
            mdl=arrays["mdl"],
            sizes=arrays["sizes"],
            counts=arrays["counts"],
            feature_ids=arrays["feature_ids"],
            config=json.loads(str(arrays["config"])),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MergeHistory):
            return NotImplemented
        return (
            self.n_features == other.n_features
            and self.n_samples == other.n_samples
            and all(
                np.array_equal(getattr(self, f), getattr(other, f)) for f in ("pairs", "costs", "mdl", "sizes", "counts", "feature_ids")
            )
            and self.config == other.config
        )


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0 .. k-1 in order of first appearance (same partition, canonical names)."""
    _, first, inverse = np.unique(np.asarray(labels), return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse.ravel()]


@dataclass(frozen=True)
class Neighbourhood:
    """Where one cluster of a cut sits in the merge tree.

    formed_from: (features, features, cost) of the two groups whose merge formed it, None for one feature;
    merged_into: the cost of the next merge it takes part in above the cut, None after the last;
    partners: the clusters of the cut on the other side of that merge (empty with no merge)."""

    formed_from: tuple[int, int, float] | None
    merged_into: float | None
    partners: tuple[int, ...]


def neighbourhoods(history: MergeHistory, k: int) -> list[Neighbourhood]:
    """Each cluster of ``history.labels_at(k)`` (by label) in the merge tree: the merge below the cut
    that formed it and the first merge above the cut it joins (costs in bits/sample)."""
    n, m = history.n_features, history.n_merges
    below = n - k  # merges 0 .. below-1 form the cut's clusters
    labels = history.labels_at(k)
    parent = np.full(n + m, -1, np.int64)
    for s, (a, b) in enumerate(history.pairs):
        parent[[a, b]] = n + s

    def size(node: int) -> int:
        return 1 if node < n else int(history.sizes[node - n])

    def leaf(node: int) -> int:
        while node >= n:
            node = int(history.pairs[node - n][0])
        return node

    roots = [x for x in range(n + below) if parent[x] < 0 or parent[x] >= n + below]  # the cut's clusters as tree nodes
    label_of = {x: int(labels[leaf(x)]) for x in roots}

    def clusters_under(node: int) -> list[int]:
        out: list[int] = []
        stack = [node]
        while stack:
            x = stack.pop()
            if x in label_of:
                out.append(label_of[x])
            else:
                stack += [int(v) for v in history.pairs[x - n]]
        return sorted(out)

    out: list[Neighbourhood | None] = [None] * k
    for x in roots:
        formed = None
        if x >= n:
            a, b = (int(v) for v in history.pairs[x - n])
            formed = (size(a), size(b), float(history.costs[x - n]))
        into, partners = None, ()
        if parent[x] >= 0:
            s = int(parent[x]) - n
            a, b = (int(v) for v in history.pairs[s])
            into, partners = float(history.costs[s]), tuple(clusters_under(b if a == x else a))
        out[label_of[x]] = Neighbourhood(formed, into, partners)
    missing = [c for c, o in enumerate(out) if o is None]
    if missing:  # every label of the cut is one root of the tree below it
        raise ValueError(f"clusters {missing[:5]} of the cut at k={k} have no node in the merge tree")
    return [o for o in out if o is not None]

"""One entry point for every clustering method, as ``scipy.cluster.hierarchy.linkage(method=...)``.

``cluster(memberships, config, ...)`` takes a :data:`ClusteringConfig` (a tagged union on its
``method``: :class:`~cluster_assets.core.merge.MergeConfig` for ``mdl_merge``,
:class:`~cluster_assets.core.baseline.BaselineConfig` for ``umap_hdbscan``) and returns one
:class:`Clustering`, whatever the method.  Every later step reads the result (its labels at a
cut, its noise, its merge history where there is one) instead of testing the method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cluster_assets.core.analysis import Cut, cut_labels
from cluster_assets.core.baseline import BaselineConfig, activation_profiles, umap_hdbscan
from cluster_assets.core.coactivation import CoFiring
from cluster_assets.core.features import Blocks
from cluster_assets.core.history import MergeHistory
from cluster_assets.core.memberships import Memberships
from cluster_assets.core.merge import MergeConfig, run_merge
from cluster_assets.core.params import SparseMatrix
from cluster_assets.core.validation import history_problems, partition_problems

#: The ``clustering`` section of a sweep point: one variant per method, tagged by ``method``.
ClusteringConfig = MergeConfig | BaselineConfig

METHODS: tuple[str, ...] = (MergeConfig.method, BaselineConfig.method)


def reseeded(config: ClusteringConfig, replicate: int) -> ClusteringConfig:
    """The config of replicate ``replicate`` (0-based): another seed where the seed matters."""
    return replace(config, seed=config.seed + replicate) if config.stochastic and replicate else config


@dataclass(frozen=True)
class Clustering:
    """A clustering of the kept features.

    method: the config's ``method``.
    feature_ids: (F,) int64 SAE feature id of each kept feature.
    history: the merge history (a hierarchy: the labels come from a cut), or None.
    labels: (F,) int64 fixed labels (``-1`` = noise) of a flat method, or None.
    Exactly one of ``history`` and ``labels`` is set.
    """

    method: str
    feature_ids: npt.NDArray[np.int64]
    history: MergeHistory | None = None
    labels: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        if (self.history is None) == (self.labels is None):
            raise ValueError("a clustering holds a merge history or fixed labels, exactly one of them")

    def at(self, cut: str | int) -> Cut:
        """The labels at ``cut`` (``"mdl"`` or a number of clusters; fixed labels have no cut)."""
        if self.history is not None:
            k, labels = cut_labels(self.history, cut)
            return Cut(self.method, k, self.feature_ids, labels, 0, float(self.history.mdl[self.history.n_features - k]))
        labels = np.asarray(self.labels, dtype=np.int64)
        return Cut(self.method, int(labels.max(initial=-1) + 1), self.feature_ids, labels, int((labels < 0).sum()), None)

    def problems(self, kept_ids: npt.NDArray[np.int64]) -> list[str]:
        """Invariants (empty = valid): a valid merge history, or one label per kept feature."""
        if self.history is not None:
            return history_problems(self.history)
        return partition_problems(np.asarray(self.labels), self.feature_ids, kept_ids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Clustering):
            return NotImplemented
        same_labels = (self.labels is None and other.labels is None) or (
            self.labels is not None and other.labels is not None and np.array_equal(self.labels, other.labels)
        )
        return (
            self.method == other.method
            and np.array_equal(self.feature_ids, other.feature_ids)
            and self.history == other.history
            and same_labels
        )


def cluster(
    memberships: Memberships,
    config: ClusteringConfig,
    *,
    activations: SparseMatrix | Blocks | None = None,
    token_prompt: npt.NDArray[np.int64] | None = None,
    cofiring: CoFiring | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Clustering:
    """Cluster the kept features of ``memberships`` with the method ``config`` names.

    activations: (tokens, d_sae) sparse activations (or their row blocks) and token_prompt: (tokens,) each token's
    prompt, which only the density baseline reads (it clusters activation profiles over prompts).  cofiring: the
    co-firing counts of ``memberships.activity`` (the MDL merge starts from their condensed triangle).
    """
    feature_ids = np.asarray(memberships.feature_ids, dtype=np.int64)
    if isinstance(config, BaselineConfig):
        if activations is None or token_prompt is None:
            raise ValueError(f"{config.method} clusters activation profiles: pass activations and token_prompt")
        labels = umap_hdbscan(activation_profiles(activations, token_prompt, feature_ids), config)
        return Clustering(config.method, feature_ids, labels=labels)
    history = run_merge(memberships.activity, config, cofiring=cofiring, feature_ids=feature_ids, progress=progress)
    return Clustering(config.method, feature_ids, history=history)

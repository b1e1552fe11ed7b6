"""Pure computation: feature statistics and filters, memberships, exact coactivation, the MDL
merge and its history, the one clustering entry point, cluster analysis, comparison metrics and held-out scoring.

Nothing here imports dagster or touches files; everything works from a notebook or a benchmark.
"""

from cluster_assets.core.clustering import Clustering, ClusteringConfig, cluster
from cluster_assets.core.coactivation import CoFiring, coactivation
from cluster_assets.core.features import FeatureStats, feature_statistics
from cluster_assets.core.history import MergeHistory, canonical_labels
from cluster_assets.core.memberships import (
    Membership,
    MembershipConfig,
    Memberships,
    activity_from_batches,
    apply_filters,
    build_memberships,
    prompt_activity,
)
from cluster_assets.core.merge import MergeConfig, MergeState, run_merge
from cluster_assets.core.params import ParameterError

__all__ = [
    "Clustering",
    "ClusteringConfig",
    "CoFiring",
    "FeatureStats",
    "Membership",
    "MembershipConfig",
    "Memberships",
    "MergeConfig",
    "MergeHistory",
    "MergeState",
    "ParameterError",
    "activity_from_batches",
    "apply_filters",
    "build_memberships",
    "canonical_labels",
    "cluster",
    "coactivation",
    "feature_statistics",
    "prompt_activity",
    "run_merge",
]

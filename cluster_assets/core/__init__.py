"""Pure computation: memberships, filters, exact coactivation, the MDL merge and its history.

Nothing here imports dagster; everything works from a notebook or a benchmark.
"""

from cluster_assets.core.coactivation import coactivation
from cluster_assets.core.ensemble import (
    comembership_disagreement,
    ensemble_distances,
    hamming_distance,
    run_ensemble,
)
from cluster_assets.core.filters import FeatureStats, FeatureStatsAccumulator, FilterConfig, apply_filters, feature_statistics
from cluster_assets.core.history import MergeHistory, canonical_labels
from cluster_assets.core.memberships import Membership, Memberships, activity_from_batches, prompt_activity
from cluster_assets.core.merge import MergeConfig, MergeState, run_merge

__all__ = [
    "FeatureStats",
    "FeatureStatsAccumulator",
    "FilterConfig",
    "Membership",
    "Memberships",
    "MergeConfig",
    "MergeHistory",
    "MergeState",
    "activity_from_batches",
    "apply_filters",
    "canonical_labels",
    "coactivation",
    "comembership_disagreement",
    "ensemble_distances",
    "feature_statistics",
    "hamming_distance",
    "prompt_activity",
    "run_ensemble",
    "run_merge",
]
